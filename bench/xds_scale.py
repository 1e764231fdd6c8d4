"""The control plane at scale: one control plane, N simulated proxies over gRPC, K real Envoys.

Run: ``.venv/bin/python bench/xds_scale.py [--services 1000] [--proxies 1000] [--gateways 10]
[--deps 20] [--repeats 30] [--burst 1000] [--delta] [--real-envoys 2] [--drivers 2]
[--telemetry] [--tracing PERCENT] [--no-floor]``.

The control plane runs in this process, pinned to core 0 (SQLite store in a temporary
directory; the mesh is applied, then the plane restarted on it, as one normally runs). The
simulated proxies are ``gossamer.testing.AdsClient``s (every resource decoded, ACKed or
NACKed like Envoy) in ``--drivers`` processes pinned to core 1 (``xds_scale_driver.py``);
``--real-envoys`` real Envoy gateways (also on core 1) join once the simulated proxies'
changes were measured alone; the same kinds of change are then measured again beside them
(they share the drivers' core: at 10k services each takes ~1 s of it per route change).
The mesh (``xds_scale_mesh.py``): services x 3 workloads; the sidecars are ``--proxies -
--gateways`` workloads with ``--deps`` Zipf-distributed dependencies each (the other
workloads run no sidecar); every gateway routes to every service.

Measured (times: ``time.monotonic()`` here when a change was applied, in the drivers when a
client had ACKed the response bringing the new content; one clock for all processes):
  time until every simulated proxy is in sync at start; one endpoint change (a Workload's
  weight) -> every proxy holding that service's endpoints ACKed; one route change (an
  ingress Route's timeout) -> every affected proxy ACKed; a burst of ``--burst`` endpoint
  changes, applied one by one (a rolling restart) -> all ACKed, pushes per proxy against
  debounce windows, bytes sent against the changed endpoint sets' bytes; control-plane CPU
  and RSS per change; a reconnect storm (every stream aborted at once, then all reconnect
  holding what they had) -> time until all in sync, and what was sent again. And the
  transport's floor under the largest endpoint change, at the start and at the end (the
  bare server and clients of ``xds_fanout.py``), with that change against it.
At the end every simulated proxy must hold exactly the control plane's config for it (its
resources re-serialised and hashed, against the cache's versions): the ``CHECK`` line; the
exit code is 1 if a change was lost or a proxy is out of sync.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _common import cpu_seconds, percentile, rss_mb, summary_ms
from _drivers import DRIVER_CORE, PLANE_CORE, DriverProc, on_cores
from xds_convergence import baseline_build
from xds_fanout import bare_floor
from xds_scale_mesh import REAL_GATEWAY_PREFIX, REPLICAS, Mesh, build_mesh, mesh_config
from xds_scale_phases import Bench, Change, real_eds_check

from gossamer.server.app import ControlPlaneApp
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.controlplane import mesh_envoy, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import ResourceType

HERE = Path(__file__).resolve().parent
#: pushes measured for the transport's floor (``transport_floor``)
FLOOR_PUSHES = 20


async def start_drivers(
    args: argparse.Namespace, app: ControlPlaneApp, proxies: list[ProxyIdentity], tmp: Path
) -> list[DriverProc]:
    out = []
    for i in range(args.drivers):
        mine = proxies[i :: args.drivers]
        nodes_file = tmp / f"driver-{i}.json"
        nodes_file.write_text(json.dumps([dataclasses.asdict(p) for p in mine]))
        log = tmp / f"driver-{i}.log"
        cmd = [sys.executable, str(HERE / "xds_scale_driver.py"), app.xds_addr[0]]
        cmd += [str(app.xds_addr[1]), str(nodes_file)] + (["--delta"] if args.delta else [])
        if args.pin:
            cmd += ["--cpu", str(DRIVER_CORE)]
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=err, limit=256 * 1024 * 1024,
            )  # fmt: skip
        out.append(DriverProc(proc, [p.node_id for p in mine], log))
    return out


def report_change(name: str, changes: list[Change], real: list[str]) -> list[str]:
    worst = [c.worst for c in changes]
    per_proxy = [t for c in changes for t in c.latencies.values()]
    lines = [
        f"{name}: all affected ACKed  {summary_ms(worst)}",
        f"{'':{len(name)}}  per proxy          {summary_ms(per_proxy)}",
        f"{'':{len(name)}}  affected proxies per change: "
        f"{percentile([len(c.latencies) for c in changes], 50)} (p50), lost: "
        f"{sum(c.lost for c in changes)}; bytes sent per change "
        f"{percentile([c.bytes for c in changes], 50) / 1e3:.1f} kB (p50); plane CPU per "
        f"change {percentile([c.cpu for c in changes], 50) * 1e3:.1f} ms (p50)",
    ]
    writes = [c.last_write for c in changes if c.last_write is not None]
    slowest = max(changes, key=lambda c: c.worst)
    lines.append(
        f"{'':{len(name)}}  plane began its last response  {summary_ms(writes)}; the slowest "
        f"change ({len(slowest.latencies)} proxies): first response begun at "
        f"{(slowest.first_write or 0) * 1e3:.0f} ms, last at "
        f"{(slowest.last_write or 0) * 1e3:.0f} ms, the simulated proxies' CPU "
        f"{slowest.driver_cpu * 1e3:.0f} ms on their core (p50 of all changes "
        f"{percentile([c.driver_cpu for c in changes], 50) * 1e3:.0f} ms)"
    )
    for node in real:
        times = [t for c in changes if (t := c.real.get(node)) is not None]
        lines.append(f"{'':{len(name)}}  real Envoy {node}: {summary_ms(times)}")
    return lines


def seed(
    store: Path,
    services: int,
    proxies: int,
    gateways: int,
    deps: int,
    real: dict[str, int],
    tracing: float,
) -> None:
    """(In a child process) apply the bench's mesh to a control plane storing in ``store``."""

    async def apply() -> None:
        mesh = build_mesh(services, proxies - gateways, gateways, deps, real)
        resources = mesh.resources() + ([mesh_config(tracing)] if tracing else [])
        async with running_control_plane(store) as app:
            t = time.perf_counter()
            for i in range(0, len(resources), 10_000):
                await app.plane.apply(resources[i : i + 10_000], wait=False)
            print(f"initial apply (validate + SQLite write): {time.perf_counter() - t:.2f} s")
            sys.stdout.flush()

    asyncio.run(apply())


async def run(args: argparse.Namespace) -> int:
    wall = time.perf_counter()
    base0 = baseline_build()
    print(f"baseline: cold build of a 10-service gateway snapshot: {base0 * 1e3:.2f} ms")
    real_gws = {f"{REAL_GATEWAY_PREFIX}{i}": free_port("127.0.0.1") for i in range(args.real)}
    mesh: Mesh = build_mesh(
        args.services, args.proxies - args.gateways, args.gateways, args.deps, real_gws
    )
    callers = mesh.callers()
    proxies = mesh.proxies()
    print(
        f"mesh: {args.services} services x {REPLICAS} workloads, {len(mesh.sidecars)} sidecars "
        f"x {args.deps} deps (Zipf: svc-0 has {callers.get(0, 0)} callers, median service "
        f"{percentile([callers.get(i, 0) for i in range(args.services)], 50):g}), "
        f"{args.gateways} simulated + {args.real} real gateways; "
        f"{mesh.resource_count()} resources; "
        f"ADS {'delta' if args.delta else 'state-of-the-world'}; {args.drivers} driver(s); "
        f"telemetry {'on' if args.telemetry else 'off'}, tracing {args.tracing:g} %"
        + (
            f"; plane on core {PLANE_CORE}, drivers and Envoys on core {DRIVER_CORE}"
            if args.pin
            else ""
        )
    )
    with tempfile.TemporaryDirectory(prefix="gossamer-scale-") as tmp_s:
        tmp = Path(tmp_s)
        fanout = mesh.holding(0)  # svc-0's endpoint change: the largest
        floors = [await transport_floor(args, fanout, tmp)] if args.floor else []
        # The mesh is written by a control plane in a child process: the measured process
        # (its RSS is the plane's memory) then never held a first plane, nor the bench's
        # own copy of the mesh. (A plane stopped in this process stays alive while
        # FastAPI's module-level caches hold its API's dependencies: at 10k services a
        # whole second model.)
        child = multiprocessing.get_context("spawn").Process(
            target=seed, args=(tmp / "cp", args.services, args.proxies, args.gateways, args.deps,
                               real_gws, args.tracing)
        )  # fmt: skip
        child.start()
        await asyncio.to_thread(child.join)
        if child.exitcode != 0:
            print(f"the child process applying the mesh failed (exit code {child.exitcode})")
            return 1
        t = time.perf_counter()
        # (telemetry off unless asked: the figures before 2026-12-04 were taken so)
        telemetry = TelemetrySettings("auto" if args.telemetry else "off")
        async with running_control_plane(tmp / "cp", telemetry=telemetry) as app:
            print(f"control plane restarted on the stored mesh: {time.perf_counter() - t:.2f} s")
            drivers = await start_drivers(args, app, proxies, tmp)
            try:
                bench = Bench(app, mesh, drivers, args)
                ok, endpoint = await phases(args, bench, tmp)
            finally:
                await asyncio.gather(*(d.stop() for d in drivers))
        if floors:
            floors.append(await transport_floor(args, fanout, tmp))
            print(floor_report(fanout, floors, endpoint), flush=True)
    base1 = baseline_build()
    print(f"baseline drift: {base0 * 1e3:.2f} ms at start, {base1 * 1e3:.2f} ms at end")
    print(f"total wall time {time.perf_counter() - wall:.0f} s")
    return 0 if ok else 1


@contextlib.contextmanager
def profiled(into: Path | None, name: str) -> Iterator[None]:
    """cProfile the event loop's thread meanwhile, into ``into/<name>.prof`` (translation's
    worker threads are not in it); nothing without ``into``."""
    if into is None:
        yield
        return
    into.mkdir(parents=True, exist_ok=True)
    profile = cProfile.Profile()
    profile.enable()
    try:
        yield
    finally:
        profile.disable()
        profile.dump_stats(into / f"{name}.prof")


async def measure_changes(
    args: argparse.Namespace, bench: Bench, weights: dict[int, int], phase: int
) -> tuple[list[Change], list[Change]]:
    """``--repeats`` times an endpoint change (a workload's weight: ``weights`` holds each
    service's last) and a route change (a timeout, other in each ``phase``), each measured
    alone; printed with the real Envoys' times, if any have joined. Returns the endpoint
    changes and the route changes."""
    mesh = bench.mesh
    endpoint, route = [], []
    dcpu0 = await bench.driver_cpu()
    for k in range(args.repeats):
        svc = k % args.services  # svc-0 first: the most popular
        weights[svc] = weights.get(svc, 1) % 100 + 1
        w = mesh.workload(svc, REPLICAS - 1, weight=weights[svc])
        with profiled(args.profile, f"endpoint-{phase}-{k}"):
            endpoint.append(await bench.measure(ResourceType.ENDPOINT, [[w]]))
        with profiled(args.profile, f"route-{phase}-{k}"):
            change = [[mesh.route(svc, 1 + 2 * phase + k % 2)]]
            route.append(await bench.measure(ResourceType.ROUTE, change))
    dcpu = await bench.driver_cpu() - dcpu0
    print(*report_change("endpoint change", endpoint, bench.real_nodes), sep="\n")
    print(*report_change("route change   ", route, bench.real_nodes), sep="\n", flush=True)
    print(f"drivers CPU for those {2 * args.repeats} changes: {dcpu:.1f} s")
    return endpoint, route


async def transport_floor(args: argparse.Namespace, fanout: int, tmp: Path) -> list[float]:
    """The transport's floor under the largest endpoint change, in this run and on these
    cores, while no control plane runs: ``bench/xds_fanout.py``'s bare server and clients
    (no protocol state, one encoded response written to every stream, every ACK decoded),
    as many streams as simulated proxies, pushing to ``fanout`` of them."""
    return await bare_floor(args.proxies, fanout, FLOOR_PUSHES, args.drivers, args.pin, tmp)


def floor_report(fanout: int, floors: list[list[float]], endpoint: list[Change]) -> str:
    """The floor at the start and at the end of the run, and the largest endpoint change
    (``fanout`` proxies) against each: what the plane and the fake ADS clients add."""
    largest = [c.worst for c in endpoint if len(c.latencies) == fanout]
    line = (
        f"transport floor: {fanout} of the bare gRPC streams ACK one endpoint set "
        f"(bench/xds_fanout.py's bare server and clients, {FLOOR_PUSHES} pushes):"
    )
    for when, times in zip(("at the start", "at the end"), floors, strict=True):
        line += f"\n  {when:12s} {summary_ms(times)}"
    if not largest:
        return line + f"\n  (no measured endpoint change reached {fanout} proxies)"
    worst = max(largest)
    ratios = " and ".join(f"{worst / percentile(t, 50):.2f}x" for t in floors)
    return line + (
        f"\n  the endpoint change to {fanout} proxies (simulated proxies alone, worst of "
        f"{len(largest)}): all ACKed in {worst * 1e3:.0f} ms, {ratios} the floor's p50 at the "
        "start and at the end"
    )


async def phases(args: argparse.Namespace, bench: Bench, tmp: Path) -> tuple[bool, list[Change]]:
    """Every measured phase; True if nothing was lost and every proxy ends in sync, and the
    endpoint changes measured with the simulated proxies alone."""
    app, mesh = bench.app, bench.mesh
    pid = os.getpid()
    n = len(bench.nodes)

    # -- first full config -------------------------------------------------------------------
    cpu0, dcpu0, t0 = cpu_seconds(pid), await bench.driver_cpu(), time.monotonic()
    await bench.ask_all({"cmd": "connect"})
    seen = await bench.until_synced(bench.nodes, args.connect_timeout)
    if len(seen) < n:
        print(f"only {len(seen)} of {n} simulated proxies in sync after {args.connect_timeout:g} s")
        return False, []
    first = max(seen.values()) - t0
    print(
        f"first full config: all {n} simulated proxies in sync after {first:.2f} s (per proxy "
        f"p50 {percentile([s - t0 for s in seen.values()], 50):.2f} s); plane CPU "
        f"{cpu_seconds(pid) - cpu0:.1f} s, drivers CPU {await bench.driver_cpu() - dcpu0:.1f} s;"
        f" RSS {rss_mb():.0f} MB",
        flush=True,
    )

    # -- one endpoint change, one route change, repeated: the simulated proxies alone ------
    weights: dict[int, int] = {}
    alone, route = await measure_changes(args, bench, weights, phase=0)
    measured = alone + route

    # -- real Envoys join ----------------------------------------------------------------------
    async with contextlib.AsyncExitStack() as stack:
        real = [g for g in mesh.gateways if g.startswith(REAL_GATEWAY_PREFIX)]
        t = time.monotonic()
        with on_cores({DRIVER_CORE} if args.pin else None):
            for g in real:
                proxy = ProxyIdentity("gateway", "default", g)
                envoy = mesh_envoy(app, proxy, delta=args.delta, workdir=tmp / g)
                bench.envoys[proxy.node_id] = await stack.enter_async_context(envoy)
                bench.real_nodes.append(proxy.node_id)
        got = await bench.until_synced(bench.real_nodes, 180)
        if len(got) < len(real):
            print(f"only {len(got)} of {len(real)} real Envoys in sync after 180 s")
            return False, []
        if real:
            print(f"{len(real)} real Envoy gateway(s) in sync after {time.monotonic() - t:.1f} s")
            # (the same changes again, beside them: they run on the drivers' core, and at
            # 10k services each takes ~1 s of it per route change)
            print(f"the same changes with the {len(real)} real Envoy gateway(s) beside them:")
            endpoint_beside, route_beside = await measure_changes(args, bench, weights, phase=1)
            measured += endpoint_beside + route_beside

        # -- a rolling restart -------------------------------------------------------------------
        count = min(args.burst, args.services * REPLICAS)
        batches = [[mesh.workload(i // REPLICAS, i % REPLICAS, weight=7)] for i in range(count)]
        burst = await bench.measure(ResourceType.ENDPOINT, batches)
        span = burst.applied[-1] - burst.applied[0]
        windows = math.ceil(span / bench.debounce) + 1 if bench.debounce > 0 else count
        most = max(burst.pushes.values(), default=0)
        print(
            f"rolling restart: {count} endpoint changes applied over {span:.2f} s "
            f"({windows} debounce windows of {bench.debounce * 1e3:g} ms): all ACKed "
            f"{burst.worst:.2f} s after the first change, "
            f"{burst.worst - span:.2f} s after the last; {len(burst.latencies)} proxies "
            f"changed, lost {burst.lost}, sent only by the barrier {burst.late}\n"
            f"  endpoint pushes per proxy: max {most}, p50 "
            f"{percentile(list(burst.pushes.values()), 50):g} (allowed: one per window, {windows})"
            f"; bytes sent {burst.bytes / 1e6:.2f} MB vs the changed endpoint sets "
            f"{burst.changed_bytes / 1e6:.2f} MB: {burst.bytes / max(burst.changed_bytes, 1):.2f}x"
            f" (resources received {burst.resources_sent} for {burst.resources_changed} changed:"
            f" {burst.resources_sent / max(burst.resources_changed, 1):.2f} each)"
            f"; plane CPU {burst.cpu:.1f} s ({burst.cpu / count * 1e3:.1f} ms per change)",
            flush=True,
        )
        for node in bench.real_nodes:
            print(f"  real Envoy {node}: ACKed {burst.real.get(node)} s after the first change")

        # -- a reconnect storm -------------------------------------------------------------------
        took, sent = await bench.reconnect_storm(args.connect_timeout)
        print(
            f"reconnect storm: all {n} streams aborted, then reconnected at once: "
            + (f"all in sync after {took:.2f} s" if took >= 0 else "NOT all in sync")
            + f"; sent again {sent['responses']} responses, {sent['bytes'] / 1e6:.2f} MB, "
            f"{sent['resources']} resources (of {sent['held']} held, none changed)",
            flush=True,
        )
        if bench.real_nodes and bench.mesh.gateways:
            print(await real_eds_check(bench, bench.real_nodes[0], "gateway~default~gw-0"))

        # -- the check ---------------------------------------------------------------------------
        bad = await bench.out_of_sync()
        stats = await bench.ask_all({"cmd": "stats"})
        lost = sum(c.lost + c.late for c in [*measured, burst])
        nacks = sum(s["nacks"] for s in stats)
        ends = sum(s["unexpected_ends"] for s in stats)
        rss, hwm = rss_mb(), rss_mb(field="VmHWM")
        print(f"control-plane process RSS {rss:.0f} MB now, peak {hwm:.0f} MB")
        if nacks or ends:
            print(f"simulated proxies: {nacks} NACKs, {ends} streams ended on their own; "
                  f"{[e for s in stats for e in s['errors']][:3]}")  # fmt: skip
    ok = not bad and not lost and took >= 0
    if ok:
        print(
            f"CHECK ok: no lost change, no proxy out of sync: all {n} simulated proxies hold "
            "exactly the control plane's config for them"
        )
    else:
        missing = [m for c in [*measured, burst] for m in c.missing]
        print(
            f"CHECK FAILED: {lost} lost change(s) {missing[:3]}, {len(bad)} proxy problem(s) "
            f"out of {n}: {bad[:5]}"
        )
    return ok, alone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--proxies", type=int, default=1000, help="simulated proxies in all")
    p.add_argument("--gateways", type=int, default=10, help="of --proxies, how many gateways")
    p.add_argument("--deps", type=int, default=20, help="dependencies per sidecar")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--burst", type=int, default=1000, help="endpoint changes in the burst")
    p.add_argument("--delta", action="store_true", help="delta ADS instead of SotW")
    p.add_argument("--real-envoys", dest="real", type=int, default=2)
    p.add_argument("--drivers", type=int, default=2, help="driver processes")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per change (1..300)")
    p.add_argument("--connect-timeout", type=float, default=600.0)
    p.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin to cores")
    p.add_argument(
        "--no-floor",
        dest="floor",
        action="store_false",
        help="do not measure the transport's floor under the largest endpoint change (at the "
        "start and at the end)",
    )
    p.add_argument(
        "--telemetry",
        action="store_true",
        help="run the plane's telemetry service, as `gossamer control-plane` does by default "
        "(every proxy then logs to it)",
    )
    p.add_argument(
        "--tracing",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="a Mesh tracing PERCENT of requests (implies --telemetry)",
    )
    p.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="write a cProfile of the event loop during each endpoint and route change "
        "to DIR/endpoint-<phase>-<k>.prof and DIR/route-<phase>-<k>.prof (phase 0: the "
        "simulated proxies alone, 1: beside the real Envoys; read with python -m pstats)",
    )
    args = p.parse_args()
    if not 1 <= args.services <= 20_000 or not 1 <= args.gateways <= args.proxies <= 5000:
        sys.exit("--services must be 1..20000 and --gateways <= --proxies <= 5000")
    if not 0 <= args.real <= 10 or not 1 <= args.drivers <= 8 or not 1 <= args.repeats <= 1000:
        sys.exit("--real-envoys must be 0..10, --drivers 1..8, --repeats 1..1000")
    args.timeout = max(1.0, min(args.timeout, 300.0))
    if not 0 <= args.tracing <= 100:
        sys.exit("--tracing must be 0..100 (percent)")
    args.telemetry = args.telemetry or args.tracing > 0
    args.pin = args.pin and {PLANE_CORE, DRIVER_CORE} <= os.sched_getaffinity(0)
    if args.pin:
        os.sched_setaffinity(0, {PLANE_CORE})
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
