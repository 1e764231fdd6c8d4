"""A realistic route table's cost: Gossamer's generated sidecar chain against the same
routes and policies written by hand for Envoy, in one run.

Run: ``.venv/bin/python bench/traffic_overhead.py [--duration 3] [--requests 50000] [--rounds 6]``

Chains, all up at once, measured interleaved (order flipped each round) at 1 and 16
connections; every Envoy runs with ``--concurrency 1``; all on loopback:
  * direct: the load generator calls the backend itself (the baseline for added latency);
  * mesh: caller sidecar -> shop's v1 / v2 sidecars -> backend, as Gossamer translates
    ``traffic_table.py``: one Route of 29 rules plus the catch-all and a TrafficPolicy
    (leastRequest, circuit breaker, retry budget, outlier detection, inbound rate limit);
    the Mesh ``strict``, so mTLS between the sidecars (SDS from the agents) and no
    plaintext request is ever measured;
  * static: three Envoys with hand-written static bootstraps (``static_traffic.py``): the
    same rules, policies and clusters, HTTP/2 over mTLS with inline certificates from the
    same CA. The reference;
  * mesh-bare / static-bare: the same two kinds of chain for a service with no Route and
    no TrafficPolicy (one callee), to attribute what the table and policies cost each.
Before measuring, both table chains must answer every probe of ``traffic_table.PROBES``
alike (status, the ``x-rule`` header naming the rule, redirect path, body) and both
callees must have handshaken TLS. The load generator (``_common.LOADER``) sends
``traffic_table.MIX`` in turn (every request forwarded; most walk much of the table).
CPU = utime + stime of the chain's Envoys over the run, divided by the requests answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from _common import (
    LoadResult,
    chain_args,
    chain_parser,
    cpu_tick,
    exit_if_failed,
    http_load,
)
from mesh_hosts import HostAgent, running_hosts
from mtls_chain import (
    Chain,
    Sample,
    backend,
    identity,
    listener_handshakes,
    wait_answering,
    workload,
)
from static_mtls import back_bootstrap, front_bootstrap, static_envoy
from static_traffic import traffic_back, traffic_front
from traffic_table import MIX, PROBES, TD, manifests

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.validate import validate_config
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.types import spiffe_id

CALLERS, CALLEES, BACKEND_HOST = "127.0.0.2", "127.0.0.3", "127.0.0.5"
STATIC = "127.0.0.6"
CHAINS = ("direct", "mesh", "static", "mesh-bare", "static-bare")
CONNECTIONS = (1, 16)
#: the issue's target: mesh / static CPU per request
CPU_TARGET = 1.15

Address = tuple[str, int]

BARE_SERVICE = """---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: bare}
spec: {ports: [{name: http, port: 9081}]}
"""


def _here() -> Address:
    return (STATIC, free_port(STATIC))


async def answers(client: httpx.AsyncClient, address: Address) -> list[tuple[object, ...]]:
    """What a client sees of each probe: status, rule, redirect path, body."""
    seen: list[tuple[object, ...]] = []
    for path, headers in PROBES:
        r = await client.get(f"http://{address[0]}:{address[1]}{path}", headers=headers)
        location = urlsplit(r.headers.get("location", "")).path
        seen.append((path, r.status_code, r.headers.get("x-rule"), location, r.text))
    return seen


async def same_answers(mesh: Address, static: Address) -> None:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        got = await answers(client, mesh), await answers(client, static)
    if got[0] != got[1]:
        diff = [f"  mesh {m}\n  static {s}" for m, s in zip(*got, strict=True) if m != s]
        raise RuntimeError("the chains answer differently:\n" + "\n".join(diff))
    print(f"both chains answer all {len(PROBES)} probes alike", flush=True)


async def measure(chains: dict[str, Chain], args: argparse.Namespace) -> list[Sample]:
    for c in chains.values():  # warm-up: connections, pools, TLS sessions
        await http_load(c.address, 16, max_requests=500, max_seconds=2, requests=MIX)
    for name, c in chains.items():  # the mTLS chains really are
        if c.handshakes is not None and await c.handshakes() == 0:
            raise RuntimeError(f"the {name} chain's callee Envoys made no TLS handshake")
    samples: list[Sample] = []
    for r in range(args.rounds):
        for conns in CONNECTIONS:
            for name in list(chains) if r % 2 == 0 else list(reversed(chains)):
                c = chains[name]
                res = await http_load(
                    c.address, conns, max_requests=args.requests,
                    max_seconds=args.duration, pids=c.pids, requests=MIX,
                )  # fmt: skip
                samples.append(Sample(name, conns, res, None))
                print(
                    f"round {r} {name:11s} c={conns:2d}: {res.requests:6d} req "
                    f"{res.rps:7.0f} rps  p50 {res.ms(50):6.3f}  p99 {res.ms(99):6.3f} ms  "
                    f"{res.cpu_us_per_request:6.1f} us CPU/req  errors {res.errors}  "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    return samples


async def run(args: argparse.Namespace) -> list[Sample]:
    with tempfile.TemporaryDirectory(prefix="gossamer-traffic-bench-") as name:
        tmp = Path(name)
        app = (BACKEND_HOST, free_port(BACKEND_HOST))
        local = {k: (CALLERS, free_port(CALLERS)) for k in ("mesh", "bare")}
        async with backend(app), running_control_plane(tmp / "cp") as cp:
            await apply_yaml(cp, manifests() + BARE_SERVICE, wait=False)
            callers = HostAgent(cp, "callers", CALLERS, tmp / "callers", [
                workload("c-1", "caller", app, ("shop", local["mesh"])),
                workload("c-2", "caller", app, ("bare", local["bare"])),
            ])  # fmt: skip
            callees = HostAgent(cp, "callees", CALLEES, tmp / "callees", [
                {**workload("shop-v1", "shop", app), "labels": {"version": "v1"}},
                {**workload("shop-v2", "shop", app), "labels": {"version": "v2"}},
                workload("bare-1", "bare", app),
            ])  # fmt: skip
            async with running_hosts(callers, callees):
                for k in ("mesh", "bare"):
                    await wait_answering(local[k])
                assert cp.ca is not None
                front_id = await identity(cp.ca, "static-caller")
                back_id = await identity(cp.ca, "static-backend")
                back_spiffe = spiffe_id(TD, "default", "static-backend")
                backs = {"v1": _here(), "v2": _here()}
                front, bare_back, bare_front = _here(), _here(), _here()
                boots = (
                    traffic_back(backs["v1"], app, back_id, TD, "static-back-v1"),
                    traffic_back(backs["v2"], app, back_id, TD, "static-back-v2"),
                    traffic_front(front, backs, front_id, back_spiffe),
                    back_bootstrap(bare_back, app, back_id, TD),
                    front_bootstrap(bare_front, bare_back, front_id, back_spiffe),
                )
                for boot in boots:
                    await validate_config(boot)
                async with contextlib.AsyncExitStack() as stack:
                    envoys = [await stack.enter_async_context(static_envoy(b)) for b in boots]
                    await wait_answering(front)
                    await wait_answering(bare_front)
                    await same_answers(local["mesh"], front)
                    return await measure_chains(args, callers, callees, app, local,
                                                envoys, (front, bare_front))  # fmt: skip
    raise AssertionError("unreachable")


async def measure_chains(
    args: argparse.Namespace, callers: HostAgent, callees: HostAgent, app: Address,
    local: dict[str, Address], envoys: list[EnvoyProcess], fronts: tuple[Address, Address],
) -> list[Sample]:  # fmt: skip
    admins = [callees.admin(f"default/{w}") for w in ("shop-v1", "shop-v2", "bare-1")]
    v1, v2 = admins[:2]
    back_v1, back_v2, static_front, bare_back, bare_front = envoys

    def handshakes(*of: EnvoyAdmin):  # type: ignore[no-untyped-def]
        async def count() -> int:
            return sum([await listener_handshakes(a) for a in of])

        return count

    pid = callees.envoy_pid
    chains = {
        "direct": Chain("direct", app, ()),
        "mesh": Chain("mesh", local["mesh"], (callers.envoy_pid("default/c-1"),
                      pid("default/shop-v1"), pid("default/shop-v2")), handshakes(v1, v2)),
        "static": Chain("static", fronts[0], (static_front.pid, back_v1.pid, back_v2.pid),
                        handshakes(back_v1.admin, back_v2.admin)),
        "mesh-bare": Chain("mesh-bare", local["bare"], (callers.envoy_pid("default/c-2"),
                           pid("default/bare-1")), handshakes(admins[2])),
        "static-bare": Chain("static-bare", fronts[1], (bare_front.pid, bare_back.pid),
                             handshakes(bare_back.admin)),
    }  # fmt: skip
    try:
        if args.dump is not None:
            await dump(args.dump, {"mesh-caller": callers.admin("default/c-1"),
                                   "mesh-shop-v1": v1, "static-front": static_front.admin,
                                   "static-back-v1": back_v1.admin})  # fmt: skip
        return await measure(chains, args)
    finally:
        for a in admins:
            await a.aclose()


async def dump(directory: Path, admins: dict[str, EnvoyAdmin]) -> None:
    """Each Envoy's /config_dump as DIRECTORY/NAME.json (to compare the two chains)."""
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    for name, admin in admins.items():
        text = json.dumps(await admin.config_dump(include_eds=True), indent=1)
        await asyncio.to_thread((directory / f"{name}.json").write_text, text)


def rows(samples: list[Sample], conns: int) -> dict[str, LoadResult]:
    """Each chain at ``conns`` pooled over the rounds (percentiles over every request,
    CPU summed over requests summed)."""
    return {
        c: LoadResult.pooled([s.result for s in samples if s.chain == c and s.connections == conns])
        for c in CHAINS
    }


def cpu_ratio(a: LoadResult, b: LoadResult) -> float:
    """``a``'s CPU per request over ``b``'s; a tiny run may use less than one clock tick of
    CPU, so ``b`` counts one tick at least (no division by zero)."""
    tick_us = cpu_tick() / max(b.requests, 1) * 1e6
    return a.cpu_us_per_request / max(b.cpu_us_per_request, tick_us)


def report(samples: list[Sample]) -> bool:
    """Print the table and the ratios; whether the CPU target was met at both counts."""
    met = True
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\npooled over rounds; CPU = the chain's Envoys; added = chain - direct; load {load}")
    print(f"{'conns':>5} {'chain':>11} {'rps':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'added p50/p99 ms':>18} {'us CPU/req':>10} {'errors':>6}")  # fmt: skip
    for conns in CONNECTIONS:
        by = rows(samples, conns)
        d = by["direct"]
        for chain, m in by.items():
            more = f"{m.ms(50) - d.ms(50):+.3f}/{m.ms(99) - d.ms(99):+.3f}"
            cpu = "-" if chain == "direct" else f"{m.cpu_us_per_request:.1f}"
            print(f"{conns:5d} {chain:>11} {m.rps:7.0f} {m.ms(50):7.3f} {m.ms(99):7.3f} "
                  f"{more:>18} {cpu:>10} {m.errors:6d}")  # fmt: skip
        g, s = by["mesh"], by["static"]
        gb, sb = by["mesh-bare"], by["static-bare"]
        ratio = cpu_ratio(g, s)
        met = met and ratio <= CPU_TARGET

        def added(r: LoadResult, p: float) -> float:
            return r.ms(p) - d.ms(p)  # noqa: B023

        print(
            f"      mesh/static: CPU/req {ratio:.2f}x (target <= {CPU_TARGET}x: "
            f"{'met' if ratio <= CPU_TARGET else 'MISSED'}), added p50 "
            f"{added(g, 50) / added(s, 50):.2f}x, added p99 {added(g, 99) / added(s, 99):.2f}x, "
            f"rps {g.rps / s.rps:.2f}x"
        )
        per_round = [
            cpu_ratio(a.result, b.result)
            for a, b in zip(
                [x for x in samples if x.chain == "mesh" and x.connections == conns],
                [x for x in samples if x.chain == "static" and x.connections == conns],
                strict=True,
            )
        ]
        print("      by round, mesh/static CPU/req: " + " ".join(f"{x:.2f}" for x in per_round))
        print(
            f"      bare: mesh-bare/static-bare CPU/req "
            f"{cpu_ratio(gb, sb):.2f}x; the table and policies "
            f"cost: mesh {g.cpu_us_per_request - gb.cpu_us_per_request:+.1f} us/req, static "
            f"{s.cpu_us_per_request - sb.cpu_us_per_request:+.1f} us/req"
        )
    return met


def main() -> None:
    parser = chain_parser(__doc__)
    parser.add_argument("--dump", type=Path, help="write the Envoys' config dumps here")
    args = chain_args(parser, None)
    samples = asyncio.run(run(args))
    report(samples)
    exit_if_failed(s.result.errors for s in samples)


if __name__ == "__main__":
    main()
