"""NGAC engine at scale, against py-ngac measured in the same run.

Run: ``.venv/bin/python bench/ngac.py [--sizes 10000 100000] [--large] [--seed 1]``
(``--large`` adds the 1M-node graph; py-ngac runs on graphs up to ``--pyngac-max`` nodes).
``--enforcement [ARGS...]`` runs ``bench/ngac_compile.py`` instead (compiling access lists
for 1000 services x 10k identities, one edge to the RBAC the proxies ACK; ARGS go to it).
``--ext-authz [ARGS...]`` runs ``bench/ngac_authz.py`` (the decision point's checks/s) and
``--chain [ARGS...]`` ``bench/ngac_chain.py`` (CPU per request, enforcement on vs off).

Generated graphs: 4 policy classes; user attributes in 4 levels and object attributes in 5
(DAG depth >= 4 on both sides; few broad attributes at the top, many narrow ones below),
every attribute below the first level with 1-3 parents from the level above (so nodes have
several parents and paths cross policy classes); users in 1-3 of the two deepest user
attribute levels, objects in 1-3 of the two deepest object attribute levels; 2
associations per user attribute with random HTTP methods, mostly on upper levels;
prohibitions on ~1 % of the users.

Measured per size:
  load time (validated inserts) and the RSS growth it caused;
  decision p50/p99 *fully cold* (every cache emptied before each decision: builds the user
  view and the target view), *cold pair* (views cached, the (user, target) pair never
  asked) and *warm* (the same pair again);
  every access list (who may do what) for 1000 object attributes x 10k users;
  one assignment change (user side and object side) until decisions and those access
  lists are correct again;
  py-ngac: load, decision p50 (it has no cache) and the ratio to ours.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from _common import percentile, rss_mb

from gossamer.authz.acl import AccessLists
from gossamer.authz.decider import Decider
from gossamer.authz.graph import Graph, Kind
from gossamer.authz.prohibitions import Prohibition
from gossamer.authz.rights import HTTP_METHODS

PCS = 4
#: share of the attributes on each level, top (assigned to policy classes) first
UA_SHARES = (0.02, 0.08, 0.3, 0.6)
OA_SHARES = (0.01, 0.04, 0.15, 0.3, 0.5)
#: at most this many attributes on each level (broad attributes do not grow with the graph);
#: the deepest levels take what the capped ones leave
LEVEL_CAPS = (16, 160, 1600, 10**12, 10**12)
#: how likely an association targets each object-attribute level (broad grants are common)
ASSOC_LEVEL_WEIGHTS = (0.35, 0.3, 0.2, 0.1, 0.05)
UA_LEVELS, OA_LEVELS = len(UA_SHARES), len(OA_SHARES)


@dataclass
class Spec:
    """A generated policy as plain operations (applied to ours and to py-ngac)."""

    nodes: list[tuple[str, Kind, list[str]]] = field(default_factory=list)
    associations: list[tuple[str, str, list[str]]] = field(default_factory=list)
    prohibitions: list[tuple[str, str, list[str], list[tuple[str, bool]], bool]] = field(
        default_factory=list
    )
    users: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    oas: list[str] = field(default_factory=list)
    uas: list[str] = field(default_factory=list)


def generate(n: int, rng: random.Random) -> Spec:
    s = Spec()
    pcs = [f"pc{i}" for i in range(PCS)]
    s.nodes += [(pc, Kind.PC, []) for pc in pcs]
    n_ua, n_oa = max(8, n // 20), max(10, n * 3 // 20)
    n_u, n_o = n * 3 // 10, n - PCS - n_ua - n_oa - n * 3 // 10

    def levels(prefix: str, kind: Kind, count: int, shares: tuple[float, ...]) -> list[list[str]]:
        out: list[list[str]] = []
        caps = LEVEL_CAPS[: len(shares)]
        sizes = [
            min(cap, max(2, int(count * share))) for cap, share in zip(caps, shares, strict=True)
        ]
        free = [i for i, cap in enumerate(caps) if cap >= count]  # the uncapped levels
        rest = count - sum(sizes[i] for i in range(len(shares)) if i not in free)
        for i in free:
            sizes[i] = max(2, int(rest * shares[i] / sum(shares[j] for j in free)))
        for level, size in enumerate(sizes):
            names = [f"{prefix}{level}.{i}" for i in range(size)]
            for name in names:
                if level == 0:
                    parents = rng.sample(pcs, rng.choice((1, 1, 2)))
                else:
                    parents = rng.sample(out[-1], min(len(out[-1]), rng.choice((1, 2, 3))))
                s.nodes.append((name, kind, parents))
            out.append(names)
        return out

    ua_levels = levels("ua", Kind.UA, n_ua, UA_SHARES)
    oa_levels = levels("oa", Kind.OA, n_oa, OA_SHARES)
    s.uas = [a for lv in ua_levels for a in lv]
    s.oas = [a for lv in oa_levels for a in lv]
    deep_ua, deep_oa = ua_levels[-1] + ua_levels[-2], oa_levels[-1] + oa_levels[-2]
    for i in range(n_u):
        name = f"spiffe://bench/ns/default/sa/u{i}"
        s.nodes.append((name, Kind.U, rng.sample(deep_ua, rng.choice((1, 2, 3)))))
        s.users.append(name)
    for i in range(n_o):
        name = f"svc{i % 97}:/api/o{i}"
        s.nodes.append((name, Kind.O, rng.sample(deep_oa, rng.choice((1, 2, 3)))))
        s.objects.append(name)
    for ua in s.uas:
        for _ in range(2):
            rights = rng.sample(HTTP_METHODS[:5], rng.randint(1, 4))
            level = rng.choices(oa_levels, ASSOC_LEVEL_WEIGHTS)[0]
            s.associations.append((ua, rng.choice(level), rights))
    for i, user in enumerate(rng.sample(s.users, max(1, n_u // 100))):
        containers = [(oa, rng.random() < 0.3) for oa in rng.sample(s.oas, rng.randint(1, 2))]
        s.prohibitions.append(
            (
                f"deny{i}",
                user,
                [rng.choice(("POST", "DELETE", "PUT"))],
                containers,
                rng.random() < 0.5,
            )
        )
    return s


def build_ours(s: Spec) -> Graph:
    g = Graph()
    create = g.create_node
    for name, kind, parents in s.nodes:
        create(name, kind, parents)
    for ua, target, rights in s.associations:
        g.associate(ua, target, rights)
    for name, subject, rights, containers, conj in s.prohibitions:
        g.add_prohibition(
            Prohibition(
                name,
                g.rights.encode(rights),
                tuple((g.id(c), comp) for c, comp in containers),
                conj,
                subject=g.id(subject),
            )
        )
    return g


def build_pyngac(s: Spec) -> tuple[Any, dict[str, int]]:
    from py_ngac.core.impl.memory.pap.memory_pap import MemoryPAP
    from py_ngac.core.pap.operation.accessright.access_right_set import AccessRightSet

    pap = MemoryPAP()
    mod = pap.modify()
    mod.operations().set_resource_access_rights(AccessRightSet(list(HTTP_METHODS)))
    gm = mod.graph()
    ids: dict[str, int] = {}
    create = {
        Kind.UA: gm.create_user_attribute,
        Kind.OA: gm.create_object_attribute,
        Kind.U: gm.create_user,
        Kind.O: gm.create_object,
    }
    for name, kind, parents in s.nodes:
        if kind == Kind.PC:
            ids[name] = gm.create_policy_class(name)
        else:
            ids[name] = create[kind](name, [ids[p] for p in parents])
    for ua, target, rights in s.associations:
        gm.associate(ids[ua], ids[target], AccessRightSet(rights))
    for name, subject, rights, containers, conj in s.prohibitions:
        mod.prohibitions().create_node_prohibition(
            name,
            ids[subject],
            AccessRightSet(rights),
            {ids[c] for c, comp in containers if not comp},
            {ids[c] for c, comp in containers if comp},
            conj,
        )
    return pap, ids


def us(values: list[float], p: float) -> str:
    return f"{percentile(values, p) * 1e6:8.2f} us"


def bench_size(n: int, args: argparse.Namespace) -> dict[str, float]:
    rng = random.Random(args.seed)
    spec = generate(n, rng)
    gc.collect()
    rss0 = rss_mb()
    t0 = time.perf_counter()
    g = build_ours(spec)
    load_s = time.perf_counter() - t0
    gc.collect()
    mem_mb = rss_mb() - rss0
    d = Decider(g)
    print(
        f"\n== {len(g):,} nodes ({len(spec.users):,} users, {len(spec.objects):,} objects, "
        f"{len(spec.uas) + len(spec.oas):,} attributes, {len(spec.associations):,} "
        f"associations, {len(spec.prohibitions):,} prohibitions)"
    )
    print(f"load (ours)            {load_s:8.2f} s   RSS +{mem_mb:,.0f} MB")

    pairs = [
        (g.id(rng.choice(spec.users)), g.id(rng.choice(spec.objects)))
        for _ in range(args.decisions)
    ]
    clock = time.perf_counter_ns
    fully_cold: list[float] = []
    for u, t in pairs[: args.decisions // 4]:
        d.clear()
        t0 = clock()
        d.privileges(u, t)
        fully_cold.append((clock() - t0) / 1e9)
    d.clear()
    for u, t in pairs[: args.decisions // 2]:  # traffic: caches views and attributes' views
        d.privileges(u, t)
    fresh: list[float] = []
    seen_u = {u for u, _ in pairs[: args.decisions // 2]}
    seen_t = {t for _, t in pairs[: args.decisions // 2]}
    for u, t in pairs[args.decisions // 2 :]:
        if u in seen_u or t in seen_t:
            continue
        t0 = clock()
        d.privileges(u, t)
        fresh.append((clock() - t0) / 1e9)
    d.clear()
    for u, t in pairs:  # cache the views, not these pairs
        d.user_view(u)
        d.target_view(t)
    cold: list[float] = []
    allowed = 0
    for u, t in pairs:
        t0 = clock()
        bits = d.privileges(u, t)
        cold.append((clock() - t0) / 1e9)
        allowed += bits != 0
    warm: list[float] = []
    for u, t in pairs:
        t0 = clock()
        d.privileges(u, t)
        warm.append((clock() - t0) / 1e9)
    answers = {
        pair: sorted(g.rights.names(d.privileges(*pair))) for pair in pairs[: args.pyngac_decisions]
    }  # for py-ngac, before any change
    print(f"decision fully cold    p50 {us(fully_cold, 50)}  p99 {us(fully_cold, 99)}")
    print(
        f"decision cold, new user and object (after other traffic)  p50 {us(fresh, 50)}  "
        f"p99 {us(fresh, 99)}  (n={len(fresh)})"
    )
    print(
        f"decision cold pair     p50 {us(cold, 50)}  p99 {us(cold, 99)}  "
        f"({allowed * 100 // len(pairs)} % of pairs hold some right)"
    )
    print(f"decision warm          p50 {us(warm, 50)}  p99 {us(warm, 99)}")

    members = rng.sample(spec.users, min(10_000, len(spec.users)))
    targets = [g.id(o) for o in rng.sample(spec.oas, min(1000, len(spec.oas)))]
    lists = AccessLists(d, [g.id(u) for u in members])
    t0 = time.perf_counter()
    lists.compute_all(targets)
    acl_s = time.perf_counter() - t0
    print(
        f"access lists           {acl_s:8.2f} s   for {len(targets)} object attributes x "
        f"{len(members):,} users"
    )

    times: dict[str, list[float]] = {"user": [], "user attribute": [], "object attribute": []}
    level = {
        k: [a for a in spec.uas + spec.oas if a.startswith(k)]
        for k in (
            f"ua{UA_LEVELS - 1}.",
            f"ua{UA_LEVELS - 2}.",
            f"oa{OA_LEVELS - 2}.",
            f"oa{OA_LEVELS - 3}.",
        )
    }
    for i in range(args.changes):
        moves = [
            ("user", rng.choice(members), rng.choice(level[f"ua{UA_LEVELS - 1}."])),
            (
                "user attribute",
                rng.choice(level[f"ua{UA_LEVELS - 1}."]),
                rng.choice(level[f"ua{UA_LEVELS - 2}."]),
            ),
            (
                "object attribute",
                rng.choice(level[f"oa{OA_LEVELS - 2}."]),
                rng.choice(level[f"oa{OA_LEVELS - 3}."]),
            ),
        ]
        probe_u, probe_t = g.id(rng.choice(members)), targets[i % len(targets)]
        for side, child, parent in moves:
            t0 = time.perf_counter()
            if g.id(parent) in g.parents(g.id(child)):
                g.deassign(child, [parent]) if len(g.parents(g.id(child))) > 1 else None
            else:
                g.assign(child, [parent])
            d.privileges(probe_u, probe_t)  # caches flushed and the decision correct again
            lists.refresh()  # and the access lists
            times[side].append(time.perf_counter() - t0)
    print(
        "one change -> correct  "
        + "  ".join(
            f"{side} p50 {percentile(v, 50) * 1e3:.2f} ms (max {max(v) * 1e3:.1f})"
            for side, v in times.items()
        )
        + f"  n={args.changes} each"
    )
    result = {
        "warm_p50_us": percentile(warm, 50) * 1e6,
        "cold_p50_us": percentile(cold, 50) * 1e6,
        "fully_cold_p50_us": percentile(fully_cold, 50) * 1e6,
    }

    if n <= args.pyngac_max:
        from py_ngac.core.pap.query.model.context.node_target_context import NodeTargetContext
        from py_ngac.core.pap.query.model.context.node_user_context import NodeUserContext

        del lists
        gc.collect()
        rss0 = rss_mb()
        t0 = time.perf_counter()
        pap, ids = build_pyngac(spec)
        p_load = time.perf_counter() - t0
        gc.collect()
        p_mem = rss_mb() - rss0
        access = pap.query().access()
        theirs: list[float] = []
        mismatches = 0
        for u, t in pairs[: args.pyngac_decisions]:
            uc = NodeUserContext.of(ids[g.name(u)])
            tc = NodeTargetContext.of(ids[g.name(t)])
            t0 = clock()
            got = access.compute_privileges(uc, tc)
            theirs.append((clock() - t0) / 1e9)
            mismatches += sorted(got) != answers[(u, t)]
        p50 = percentile(theirs, 50)
        print(
            f"py-ngac load           {p_load:8.2f} s   RSS +{p_mem:,.0f} MB  "
            f"(ours {p_load / load_s:.1f}x faster)"
        )
        print(
            f"py-ngac decision       p50 {us(theirs, 50)}  p99 {us(theirs, 99)}  "
            f"(n={len(theirs)}, {mismatches} answers differ from ours)"
        )
        print(
            f"ratio py-ngac / ours   warm {p50 / percentile(warm, 50):,.0f}x   cold pair "
            f"{p50 / percentile(cold, 50):,.0f}x   fully cold "
            f"{p50 / percentile(fully_cold, 50):,.1f}x"
        )
        result["pyngac_p50_us"] = p50 * 1e6
    else:
        print(
            f"py-ngac                skipped above {args.pyngac_max:,} nodes "
            "(raise --pyngac-max to run it)"
        )
    return result


def main() -> None:
    if "--enforcement" in sys.argv[1:]:
        import ngac_compile

        at = sys.argv.index("--enforcement")
        ngac_compile.run(sys.argv[1:at] + sys.argv[at + 1 :])
        return
    for flag, module in (("--ext-authz", "ngac_authz"), ("--chain", "ngac_chain")):
        if flag in sys.argv[1:]:
            at = sys.argv.index(flag)
            importlib.import_module(module).main(sys.argv[1:at] + sys.argv[at + 1 :])
            return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--large", action="store_true", help="also run 1,000,000 nodes")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--decisions", type=int, default=4000)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--pyngac-max", type=int, default=100_000)
    ap.add_argument("--pyngac-decisions", type=int, default=300)
    args = ap.parse_args()
    sizes = [*args.sizes, *([1_000_000] if args.large else [])]
    print(f"python {sys.version.split()[0]}; sizes {sizes}; seed {args.seed}")
    for n in sizes:
        bench_size(n, args)
        gc.collect()


if __name__ == "__main__":
    main()
