"""Random NGAC policies as a list of plain operations, applied to our graph or to py-ngac."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from gossamer.authz.graph import ADMIN_POLICY_CLASSES, ALLOWED_PARENTS, Graph, Kind
from gossamer.authz.prohibitions import Prohibition
from gossamer.model.access_policy import AccessPolicy

RIGHTS = ("read", "write", "exec")


@dataclass
class Policy:
    ops: list[tuple[Any, ...]] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    processes: list[str] = field(default_factory=lambda: ["p1", "p2"])


def _pick_parents(rng: random.Random, pool: list[str], most: int = 3) -> list[str]:
    k = rng.randint(1, min(most, len(pool)))
    return rng.sample(pool, k)


def random_policy(rng: random.Random, size: int = 6) -> Policy:
    pol = Policy()
    pcs = [f"pc{i}" for i in range(rng.randint(1, 3))]
    pol.ops += [("node", pc, "PC", []) for pc in pcs]
    uas: list[str] = []
    for i in range(rng.randint(2, size)):
        name = f"ua{i}"
        pol.ops.append(("node", name, "UA", _pick_parents(rng, pcs + uas)))
        uas.append(name)
    oas: list[str] = []
    for i in range(rng.randint(2, size + 2)):
        name = f"oa{i}"
        pol.ops.append(("node", name, "OA", _pick_parents(rng, pcs + oas)))
        oas.append(name)
    for i in range(rng.randint(1, 4)):
        name = f"u{i}"
        pol.ops.append(("node", name, "U", _pick_parents(rng, uas)))
        pol.users.append(name)
    objs: list[str] = []
    for i in range(rng.randint(1, size)):
        name = f"o{i}"
        pol.ops.append(("node", name, "O", _pick_parents(rng, oas + pcs[:1] * rng.randint(0, 1))))
        objs.append(name)
    for _ in range(rng.randint(1, size + 4)):
        rights = rng.sample([*RIGHTS, "*"], rng.randint(1, 3))
        pol.ops.append(("assoc", rng.choice(uas), rng.choice(uas + oas + objs), rights))
    if rng.random() < 0.3:  # rights on policy classes, which also reach nodes assigned to one
        rights = rng.sample([*RIGHTS, "*"], rng.randint(1, 2))
        pol.ops.append(("assoc", rng.choice(uas), ADMIN_POLICY_CLASSES, rights))
    for i in range(rng.randint(0, 4)):
        containers = [(c, rng.random() < 0.4) for c in rng.sample(oas + objs, rng.randint(1, 3))]
        rights = rng.sample(RIGHTS, rng.randint(1, 2))
        conj = rng.random() < 0.5
        if rng.random() < 0.25:
            pol.ops.append(
                (
                    "pproc",
                    f"pr{i}",
                    rng.choice(pol.users),
                    rng.choice(pol.processes),
                    rights,
                    containers,
                    conj,
                )
            )
        else:
            pol.ops.append(
                ("prohib", f"pr{i}", rng.choice(uas + pol.users), rights, containers, conj)
            )
    pol.targets = oas + objs + uas + pcs
    return pol


def apply_to_graph(g: Graph, op: tuple[Any, ...]) -> None:
    if op[0] == "node":
        g.create_node(op[1], Kind[op[2]], op[3])
    elif op[0] == "assoc":
        g.associate(op[1], op[2], op[3])
    elif op[0] == "prohib":
        _, name, subject, rights, containers, conj = op
        g.add_prohibition(
            Prohibition(
                name,
                g.rights.encode(rights),
                tuple((g.id(c), comp) for c, comp in containers),
                conj,
                subject=g.id(subject),
            )
        )
    elif op[0] == "pproc":
        _, name, user, process, rights, containers, conj = op
        g.add_prohibition(
            Prohibition(
                name,
                g.rights.encode(rights),
                tuple((g.id(c), comp) for c, comp in containers),
                conj,
                process=process,
                process_user=g.id(user),
            )
        )
    else:  # pragma: no cover - a typo in a test
        raise AssertionError(op)


def build_graph(pol: Policy) -> Graph:
    g = Graph(RIGHTS)
    for op in pol.ops:
        apply_to_graph(g, op)
    return g


def to_access_policy(pol: Policy, admins: str | None = None) -> AccessPolicy:
    """``pol`` as an ``AccessPolicy`` resource (what the engine keeps in the store); with
    ``admins`` (a user attribute), that attribute holds ``*`` on every attribute."""
    spec: dict[str, Any] = {
        "accessRights": list(RIGHTS),
        "policyClasses": [],
        "userAttributes": {},
        "objectAttributes": {},
        "users": {},
        "objects": {},
        "associations": [],
        "prohibitions": [],
    }
    section = {"UA": "userAttributes", "OA": "objectAttributes", "U": "users", "O": "objects"}
    for op in pol.ops:
        if op[0] == "node":
            _, name, kind, parents = op
            if kind == "PC":
                spec["policyClasses"].append(name)
            else:
                spec[section[kind]][name] = parents
        elif op[0] == "assoc":
            spec["associations"].append({"userAttribute": op[1], "target": op[2], "rights": op[3]})
        else:
            name, subject = op[1], op[2]
            process = op[3] if op[0] == "pproc" else None
            rights, containers, conj = op[-3:]
            spec["prohibitions"].append(
                {
                    "name": name,
                    "subject": subject,
                    "process": process,
                    "rights": rights,
                    "include": [c for c, comp in containers if not comp],
                    "exclude": [c for c, comp in containers if comp],
                    "conjunctive": conj,
                }
            )
    if admins is not None:
        attributes = [*spec["userAttributes"], *spec["objectAttributes"]]
        spec["associations"] += [
            {"userAttribute": admins, "target": a, "rights": ["*"]} for a in attributes
        ]
    return AccessPolicy.model_validate(
        {
            "apiVersion": "gossamer.dev/v1",
            "kind": "AccessPolicy",
            "metadata": {"name": "random"},
            "spec": spec,
        }
    )


CREATE_OPS = {
    "create_user_attribute": Kind.UA,
    "create_object_attribute": Kind.OA,
    "create_user": Kind.U,
    "create_object": Kind.O,
}


def random_batch(rng: random.Random, g: Graph, step: int) -> list[dict[str, Any]]:
    """An administrative batch of 1-4 commands over the nodes of ``g`` and those it creates
    (creations weigh most: undoing them frees node ids that later creations reuse). Commands
    mostly follow the graph's rules (the caller's rights may still refuse them); now and
    then one does not."""
    kinds = {g.name(n): g.kind(n) for n in g.nodes() if not g.name(n).startswith("PM_ADMIN")}

    def of(*wanted: Kind) -> list[str]:
        fits = [n for n, k in kinds.items() if k in wanted]
        return fits if fits and rng.random() < 0.9 else list(kinds)

    cmds: list[dict[str, Any]] = []
    for i in range(rng.randint(1, 4)):
        what = rng.randrange(9)
        name = f"b{step}-{i}"
        if what <= 2 and rng.random() < 0.1:
            cmds.append({"op": "create_policy_class", "name": name})
            kinds[name] = Kind.PC
        elif what <= 2:
            op, kind = rng.choice(list(CREATE_OPS.items()))
            pool = of(*ALLOWED_PARENTS[kind])
            cmds.append(
                {
                    "op": op,
                    "name": name,
                    "parents": rng.sample(pool, rng.randint(1, min(2, len(pool)))),
                }
            )
            kinds[name] = kind
        elif what in (3, 4):
            child = rng.choice(list(kinds))
            cmds.append(
                {
                    "op": "assign" if what == 3 else "deassign",
                    "child": child,
                    "parents": [rng.choice(of(*ALLOWED_PARENTS[kinds[child]]))],
                }
            )
        elif what == 5:
            cmds.append(
                {
                    "op": "associate",
                    "userAttribute": rng.choice(of(Kind.UA)),
                    "target": rng.choice(of(Kind.UA, Kind.OA, Kind.O)),
                    "rights": rng.sample([*RIGHTS, "*", "*a", "*r"], rng.randint(1, 2)),
                }
            )
        elif what == 6:
            cmds.append(
                {
                    "op": "dissociate",
                    "userAttribute": rng.choice(of(Kind.UA)),
                    "target": rng.choice(of(Kind.UA, Kind.OA, Kind.O)),
                }
            )
        elif what == 7:
            cmds.append({"op": "delete_node", "name": rng.choice(list(kinds))})
        else:
            cmds.append(
                {
                    "op": "create_prohibition",
                    "prohibition": {
                        "name": f"x{step}-{i}",
                        "subject": rng.choice(of(Kind.UA, Kind.U)),
                        "rights": [rng.choice(RIGHTS)],
                        "include": [rng.choice(of(Kind.OA, Kind.O))],
                    },
                }
            )
    return cmds
