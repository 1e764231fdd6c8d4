"""The control plane's publish rounds alone: the mesh of ``bench/xds_scale.py`` (N services
x 3 workloads, ``--sidecars`` 990 with 20 Zipf-distributed dependencies, 10 gateways
routing to every service) on a running ``ControlPlane`` over the memory store, every proxy attached,
and no gRPC, streams or drivers. Each of ``--rounds`` times it changes one workload (an
endpoint round), then a Route (a route round after an endpoint change), then the same
Route again (a route round after a route change), and times each ``publish``: what a
change costs the plane before any byte is sent. Printed against a cold build of a small
gateway snapshot measured in the same run (the machine drifts).

``--check`` then compares every proxy's snapshot with a fresh translation of the final
model: a cache kept too long (sets, tables, patches) shows as a difference.

    .venv/bin/python bench/xds_rounds.py --services 10000 [--rounds 8] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from xds_convergence import baseline_build
from xds_scale_mesh import REPLICAS, build_mesh

from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.testing.controlplane import memory_control_plane
from gossamer.translate.proxy import Translator
from gossamer.xds.serializer import Serializer

APPLY_BATCH = 10_000


def line(what: str, times: list[float], base: float) -> str:
    low, mid = min(times), statistics.median(times)
    return (
        f"{what:28s} min {low * 1e3:7.1f} ms  median {mid * 1e3:7.1f} ms  "
        f"({mid / base:5.1f}x the baseline, n={len(times)})"
    )


async def differing(plane: ControlPlane) -> list[str]:
    """The proxies whose snapshot differs from a fresh translation of the plane's model."""
    publisher, model = plane.publisher, plane.model
    assert model is not None
    fresh, serializer = Translator(), Serializer()
    tls, access = publisher.tls_state(), await publisher.access_state(model)
    out = []
    for proxy in plane.cache.connected():
        held = plane.cache.get(proxy.node_id)
        want = proxy_snapshot(fresh.proxy(model, proxy, tls, access), serializer)
        if held is None or any(
            {n: v.version for n, v in held.resources[t].items()}
            != {n: v.version for n, v in want.resources[t].items()}
            for t in want.resources
        ):
            out.append(proxy.node_id)
    return out


async def run(args: argparse.Namespace) -> int:
    base = baseline_build()
    print(f"baseline: cold build of a 10-service gateway snapshot: {base * 1e3:.2f} ms")
    mesh = build_mesh(args.services, args.sidecars, 10, 20, {})
    async with memory_control_plane() as plane:
        resources = mesh.resources()
        for i in range(0, len(resources), APPLY_BATCH):
            await plane.apply(resources[i : i + APPLY_BATCH], wait=False)
        plane.publisher.heap.enabled = True  # (as the served plane runs: serving_interpreter)
        for proxy in mesh.proxies():
            plane.cache.attach(proxy)
        began = time.perf_counter()
        await plane.publish()
        print(f"mesh: {args.services} services, {len(mesh.proxies())} proxies")
        print(f"first full round: {time.perf_counter() - began:.2f} s")
        kinds = ("endpoint", "route after endpoint", "route after route")
        rounds: dict[str, list[float]] = {kind: [] for kind in kinds}
        for k in range(args.rounds):
            changes = (
                mesh.workload(k, REPLICAS - 1, weight=k + 5),
                mesh.route(k, 1 + k % 2),
                mesh.route(k, 3 + k % 2),
            )
            for kind, change in zip(kinds, changes, strict=True):
                await plane.apply([change], wait=False)
                began = time.perf_counter()
                await plane.publish()
                rounds[kind].append(time.perf_counter() - began)
        for kind, times in rounds.items():
            print(line(f"{kind} round:", times, base))
        if args.check:
            bad = await differing(plane)
            if bad:
                print(f"CHECK failed: {len(bad)} proxies differ from a fresh translation:")
                print(*bad[:5])
                return 1
            print(f"CHECK ok: all {len(mesh.proxies())} proxies hold a fresh translation")

    print(f"baseline drift: {base * 1e3:.2f} ms at start, {baseline_build() * 1e3:.2f} ms at end")
    return 0


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--sidecars", type=int, default=990)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--check", action="store_true", help="compare with a fresh translation")
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
