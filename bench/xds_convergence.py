"""xDS convergence at scale: N services x 3 endpoints, P real Envoy gateways.

Run: ``.venv/bin/python bench/xds_convergence.py [--services 1000] [--proxies 10]
[--repeats 30] [--delta] [--lag-only] [--apply-live]``.

The control plane runs in this process (SQLite store in a temporary directory, gRPC ADS on
loopback); the Envoys are real processes. The mesh is applied once, then the control plane
is restarted on it, as one normally runs (``--apply-live``: measured on the plane it was
applied to). Each Envoy is a *gateway* whose routes reach every
service, so each one receives all N clusters, N endpoint sets and one route table with N
virtual hosts: the largest snapshot the model can give a proxy, built for every proxy.

Measured:
  (a) one endpoint change (a Workload's weight) -> every proxy ACKed: ``apply(wait=True)``
      (published at once) and ``apply(wait=False)`` + polling the ACKs (default debounce:
      each change made after 150 ms of quiet, a lone change as an operator makes it);
  (b) the same for one route change (a Route's timeout);
  (c) RSS of this process (control plane + benchmark driver) from /proc/self/status;
  (d) Translator + proxy_snapshot (with serialisation) of one gateway's snapshot, cold
      (fresh memo) and warm (same memo, unchanged model; and after one endpoint change);
  (e) event-loop lag: the longest stall of the loop (a probe task asking to run every
      1 ms) during a route-change publish, before (``slice_s=inf``: the whole publish in
      one go, as it used to be) and after (yielding every ``PUBLISH_SLICE``), alternating
      in the same run; also the longest stall until every proxy ACKed. ``--lag-only``
      measures only this.
A baseline measured in the same run (the same build for a 10-service model, cold) gives
ratios that survive the machine's drift.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _common import percentile, rss_mb, summary_ms

from gossamer.controlplane.publisher import PUBLISH_SLICE
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.errors import WaitTimeoutError
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.model.base import Resource
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import mesh_envoy, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate.proxy import Translator
from gossamer.types import ProxyIdentity
from gossamer.xds.serializer import Serializer

API = "gossamer.dev/v1"
ENDPOINTS_PER_SERVICE = 3
#: every phase gives up after this long
PHASE_TIMEOUT = 5.0


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> Resource:
    return parse_manifest(
        {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def workload(service: int, replica: int, weight: int = 1) -> Resource:
    k = service * ENDPOINTS_PER_SERVICE + replica
    return _manifest(
        "Workload",
        f"svc-{service}-{replica}",
        {
            "service": f"svc-{service}",
            "address": f"127.1.{k // 250 % 250}.{k % 250 + 1}",
            "ports": [{"port": 10_000 + k % 25_000, "appPort": 40_000 + k % 25_000}],
            "sidecar": True,
            "weight": weight,
        },
    )


def route(service: int, gateways: list[str], timeout_s: int | None = None) -> Resource:
    rule: dict[str, Any] = {"destinations": [{"service": f"svc-{service}"}]}
    if timeout_s is not None:
        rule["timeout"] = f"{timeout_s}s"
    return _manifest(
        "Route",
        f"svc-{service}",
        {"gateways": gateways, "hosts": [f"svc-{service}.bench"], "rules": [rule]},
    )


def mesh_resources(services: int, gateways: list[tuple[str, int]]) -> list[Resource]:
    names = [g for g, _ in gateways]
    out: list[Resource] = [
        _manifest("Gateway", g, {"address": "127.0.0.1", "port": port}) for g, port in gateways
    ]
    for i in range(services):
        out.append(_manifest("Service", f"svc-{i}", {"ports": [{"name": "http", "port": 8080}]}))
        out.extend(workload(i, j) for j in range(ENDPOINTS_PER_SERVICE))
        out.append(route(i, names))
    return out


def build_seconds(
    model: ModelSnapshot, proxy: ProxyIdentity, t: Translator, s: Serializer
) -> float:
    started = time.perf_counter()
    proxy_snapshot(t.proxy(model, proxy), s)
    return time.perf_counter() - started


def baseline_build(repeats: int = 20) -> float:
    """Median cold build of a 10-service, 1-gateway model: the machine-speed yardstick."""
    res = mesh_resources(10, [("gw-0", 1)])
    model = ModelSnapshot().with_changes(res)
    proxy = ProxyIdentity("gateway", "default", "gw-0")
    times = [build_seconds(model, proxy, Translator(), Serializer()) for _ in range(repeats)]
    return percentile(times, 50)


async def all_synced(app: ControlPlaneApp, nodes: list[str]) -> bool:
    for node in nodes:
        snap = app.plane.cache.get(node)
        if snap is None or not app.plane.monitor.synced(node, snap):
            return False
    return True


async def poll(
    check: Callable[[], Awaitable[bool]], within: float, what: str, interval: float = 0.0005
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {within:g} s")
        await asyncio.sleep(interval)


async def converge(app: ControlPlaneApp, nodes: list[str], resource: Resource, wait: bool) -> float:
    """Apply one resource; return the seconds until every proxy ACKed the result."""
    before = {n: app.plane.cache.get(n) for n in nodes}
    started = time.perf_counter()
    if wait:
        try:
            result = await app.plane.apply([resource], wait=True, wait_timeout=PHASE_TIMEOUT)
        except WaitTimeoutError:
            return PHASE_TIMEOUT  # counted as a miss by the caller
        elapsed = time.perf_counter() - started
        if sorted(result.acked_by) != sorted(nodes):
            raise RuntimeError(f"only {len(result.acked_by)} of {len(nodes)} proxies changed")
        return elapsed
    # a lone change, as an operator's: made after a quiet period (3 default debounce
    # periods), not within the burst of the change measured before it
    await asyncio.sleep(0.15)
    started = time.perf_counter()
    await app.plane.apply([resource], wait=False)

    async def done() -> bool:
        return all(app.plane.cache.get(n) is not before[n] for n in nodes) and await all_synced(
            app, nodes
        )

    try:
        await poll(done, PHASE_TIMEOUT, "every proxy ACKing the change")
    except TimeoutError:
        return PHASE_TIMEOUT
    return time.perf_counter() - started


async def _one_publish(app: ControlPlaneApp) -> float:
    started = time.perf_counter()
    await app.plane.publish()
    return time.perf_counter() - started


class LoopLag:
    """The longest the event loop kept a 1 ms timer of ours waiting beyond its due time."""

    INTERVAL = 0.001

    def __init__(self) -> None:
        self.worst = 0.0
        self._ran = asyncio.Event()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(self.INTERVAL)
            now = loop.time()
            self.worst = max(self.worst, now - last - self.INTERVAL)
            last = now
            self._ran.set()

    async def next_turn(self) -> None:
        """Wait until the probe ran again (a stall is seen only once it is over)."""
        self._ran.clear()
        await self._ran.wait()

    def reset(self) -> None:
        self.worst = 0.0


async def loop_lag(
    app: ControlPlaneApp, nodes: list[str], gw_names: list[str], repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Route changes published in one go (before) and a slice at a time (after), in turns:
    per mode, the worst loop stall during the publish, until every proxy ACKed, and the
    publish's wall time."""
    modes = {
        "before (one go)": math.inf,
        f"after ({PUBLISH_SLICE * 1e3:g} ms slices)": PUBLISH_SLICE,
    }
    out: dict[str, dict[str, list[float]]] = {
        m: {"publish": [], "until ACKed": [], "wall": []} for m in ["idle (no publish)", *modes]
    }
    lag = LoopLag()
    timeout = 10
    async with asyncio.TaskGroup() as tg:
        probe = tg.create_task(lag.run())
        for _ in range(repeats):
            # the noise floor: the same probe over a quiet 300 ms (other processes, GC)
            lag.reset()
            await asyncio.sleep(0.3)
            out["idle (no publish)"]["publish"].append(lag.worst)
            for mode, slice_s in modes.items():
                # a new route timeout each time: every gateway rebuilds its table. Made just
                # after a publish (nothing to send), the change is within its debounce: its
                # round is not due yet (a lone change is published at once), this one is it
                timeout += 1
                await app.plane.publish()
                await app.plane.apply([route(0, gw_names, timeout)], wait=False)
                await asyncio.sleep(0.01)  # the probe runs
                lag.reset()
                started = time.perf_counter()
                changed = await app.plane.publish(slice_s=slice_s)
                out[mode]["wall"].append(time.perf_counter() - started)
                await lag.next_turn()
                out[mode]["publish"].append(lag.worst)
                if sorted(n for n, _ in changed) != sorted(nodes):
                    raise RuntimeError(f"only {len(changed)} of {len(nodes)} proxies changed")
                await poll(lambda: all_synced(app, nodes), PHASE_TIMEOUT, "every proxy ACKing")
                out[mode]["until ACKed"].append(lag.worst)
                await asyncio.sleep(0.2)  # let the debounced round (nothing to do) pass
        probe.cancel()
    return out


async def run(args: argparse.Namespace) -> None:
    wall = time.perf_counter()
    base0 = baseline_build()
    print(f"baseline: cold build of a 10-service gateway snapshot: {base0 * 1e3:.2f} ms")
    print(
        f"budget {args.budget:g} s for the measured phases; a change not ACKed within "
        f"{PHASE_TIMEOUT:g} s counts as {PHASE_TIMEOUT:g} s"
    )
    gateways = [(f"gw-{p}", free_port("127.0.0.1")) for p in range(args.proxies)]
    gw_names = [g for g, _ in gateways]
    resources = mesh_resources(args.services, gateways)
    print(
        f"mesh: {args.services} services x {ENDPOINTS_PER_SERVICE} workloads, "
        f"{args.services} routes, {args.proxies} gateways ({len(resources)} resources); "
        f"ADS {'delta' if args.delta else 'state-of-the-world'}"
    )
    with tempfile.TemporaryDirectory(prefix="gossamer-bench-") as tmp:
        if not args.apply_live:
            # as a control plane normally runs: serving the mesh it loaded from its store
            async with running_control_plane(Path(tmp) / "cp") as app:
                t = time.perf_counter()
                await app.plane.apply(resources, wait=False)
                print(
                    f"initial apply (validate + SQLite write): {time.perf_counter() - t:.2f} s",
                    flush=True,
                )
        t = time.perf_counter()
        async with running_control_plane(Path(tmp) / "cp") as app:
            if args.apply_live:
                t = time.perf_counter()
                await app.plane.apply(resources, wait=False)
                what = "initial apply (validate + SQLite write)"
            else:
                what = "control plane restarted on the stored mesh (load, start)"
            print(f"{what}: {time.perf_counter() - t:.2f} s; RSS {rss_mb():.0f} MB", flush=True)
            proxies = [ProxyIdentity("gateway", "default", g) for g in gw_names]
            nodes = [p.node_id for p in proxies]
            async with contextlib.AsyncExitStack() as stack:
                t = time.perf_counter()
                for p in proxies:
                    await stack.enter_async_context(
                        mesh_envoy(app, p, delta=args.delta, workdir=Path(tmp) / p.name)
                    )
                await poll(
                    lambda: all_synced(app, nodes),
                    180.0,
                    "every gateway ACKing its first snapshot",
                    interval=0.05,
                )
                print(
                    f"{args.proxies} Envoys started and in sync: "
                    f"{time.perf_counter() - t:.1f} s; RSS {rss_mb():.0f} MB",
                    flush=True,
                )
                lag = await loop_lag(app, nodes, gw_names, args.lag_repeats)
                print(
                    f"event-loop lag during a route-change publish to {args.proxies} "
                    f"gateways ({args.services} services), worst stall per publish:"
                )
                for mode, figures in lag.items():
                    if not figures["wall"]:
                        print(f"  {mode:22s} over 300 ms:         {summary_ms(figures['publish'])}")
                        continue
                    print(
                        f"  {mode:22s} during the publish: {summary_ms(figures['publish'])}"
                        f"\n  {'':22s} until all ACKed:     {summary_ms(figures['until ACKed'])}"
                        f"\n  {'':22s} publish wall time:  {summary_ms(figures['wall'])}",
                        flush=True,
                    )
                if args.lag_only:
                    return
                stats0 = app.plane.statistics()
                print(
                    f"  one publish (all proxies): {await _one_publish(app) * 1e3:.0f} ms",
                    flush=True,
                )

                # a no-op apply round trip: store write + rebuild for every proxy, no push
                phase_budget = args.budget / 5
                noop: list[float] = []
                phase_end = time.perf_counter() + phase_budget
                for _ in range(min(args.repeats, 10)):
                    if noop and time.perf_counter() > phase_end:
                        break
                    t = time.perf_counter()
                    await app.plane.apply([workload(1, 0)], wait=True)
                    noop.append(time.perf_counter() - t)

                results: dict[str, list[float]] = {}
                for wait in (True, False):
                    label = "apply(wait=True)" if wait else "debounced (wait=False)"
                    ep: list[float] = []
                    rt: list[float] = []
                    phase_end = time.perf_counter() + 2 * phase_budget
                    for k in range(args.repeats):
                        if ep and time.perf_counter() > phase_end:
                            break  # the time budget is spent: fewer samples than --repeats
                        ep.append(await converge(app, nodes, workload(0, 0, 2 + k % 2), wait))
                        rt.append(await converge(app, nodes, route(0, gw_names, 1 + k % 2), wait))
                    results[f"endpoint change, {label}"] = ep
                    results[f"route change, {label}"] = rt
                    print(f"  {label}: endpoint change {summary_ms(ep)}", flush=True)
                    print(f"  {label}: route change    {summary_ms(rt)}", flush=True)
                stats1 = app.plane.statistics()
                rss = rss_mb()
                hwm = rss_mb(field="VmHWM")

            model = app.plane.model
            assert model is not None
            gw = ProxyIdentity("gateway", "default", "gw-0")
            translator, serializer = Translator(), Serializer()
            cold = build_seconds(model, gw, translator, serializer)
            warm = [build_seconds(model, gw, translator, serializer) for _ in range(5)]
            changed = model.with_changes([workload(0, 0, 7)])
            warm_changed = build_seconds(changed, gw, translator, serializer)

    base1 = baseline_build()
    base = (base0 + base1) / 2
    noop_p50 = percentile(noop, 50)
    print()
    print(f"no-op apply(wait=True) round trip: {summary_ms(noop)}")
    for name, values in results.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        misses = sum(v >= PHASE_TIMEOUT for v in values)
        print(
            f"{name:38s} {summary_ms(values)}  not converged in {PHASE_TIMEOUT:g} s: {misses}"
            f"\n{'':38s}  p50/no-op {p50 / noop_p50:.2f}x"
            f"  p99/baseline {p99 / base:.0f}x"
        )
    builds = stats1.builds - stats0.builds
    build_s = stats1.build_seconds - stats0.build_seconds
    print(
        f"publishes during the runs: {builds}, {build_s / max(builds, 1) * 1e3:.1f} ms each "
        f"(translate + serialise for all {args.proxies} proxies)"
    )
    print(
        f"control-plane process RSS (in-process; includes the benchmark driver): "
        f"{rss:.0f} MB now, peak {hwm:.0f} MB"
    )
    print(
        f"build+serialize one gateway ({args.services} services): cold {cold * 1e3:.1f} ms, "
        f"warm {percentile(warm, 50) * 1e3:.2f} ms, after one endpoint change "
        f"{warm_changed * 1e3:.2f} ms; cold / baseline {cold / base:.0f}x"
    )
    print(f"baseline drift: {base0 * 1e3:.2f} ms at start, {base1 * 1e3:.2f} ms at end")
    print(f"total wall time {time.perf_counter() - wall:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--proxies", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--delta", action="store_true", help="delta ADS instead of SotW")
    parser.add_argument(
        "--lag-repeats",
        type=int,
        default=10,
        help="route-change publishes per mode for the loop-lag probe (1..100)",
    )
    parser.add_argument(
        "--lag-only", action="store_true", help="measure only the event-loop lag (e), then stop"
    )
    parser.add_argument(
        "--apply-live",
        action="store_true",
        help="apply the mesh to the running control plane instead of "
        "restarting it on the stored mesh (what it loads at start is "
        "frozen out of GC collections; what is applied later is not)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds before one change counts as not converged (1..120)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=150.0,
        help="seconds for all measurement phases together (stops repeating)",
    )
    args = parser.parse_args()
    if not 1 <= args.services <= 10_000 or not 1 <= args.proxies <= 50:
        sys.exit("--services must be 1..10000 and --proxies 1..50")
    args.repeats = max(1, min(args.repeats, 200))
    args.lag_repeats = max(1, min(args.lag_repeats, 100))
    global PHASE_TIMEOUT
    PHASE_TIMEOUT = max(1.0, min(args.timeout, 120.0))
    args.budget = max(5.0, min(args.budget, 3600.0))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
