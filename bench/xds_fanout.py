"""The transport's floor for one endpoint change sent to many proxies.

Run: ``.venv/bin/python bench/xds_fanout.py [--streams 1000] [--fanouts 100,221,943]
[--repeats 20] [--drivers 2]``.

``bench/xds_scale.py`` finds the endpoint change held by 943 of 1,000 proxies ACKed by all
of them after ~1.3 s, against a target of 100 ms. This bench asks how much of that any
Python gRPC server pays, whatever it does: two servers run in this process (pinned to core
0), each with ``--streams`` streams from bare clients in ``--drivers`` processes of its own
on core 1 (``xds_fanout_driver.py``: every resource decoded into a
``ClusterLoadAssignment``, every response ACKed at once, 25 streams per connection as
``xds_scale``'s drivers). A push sends one changed endpoint set (``svc-0``, 3 endpoints)
to the first K streams; the two servers are pushed in turns, K by K, so both are measured
under the same conditions:

- ``bare``: the floor. A grpc.aio handler keeps each stream's context and writes one
  ``DiscoveryResponse``, encoded once, to the K streams at once (``asyncio.gather``); it
  reads and decodes each ACK. No protocol state, cache, monitor or metrics.
- ``gossamer``: ``gossamer.xds.XdsServer`` with its ``SnapshotCache`` and ``XdsMonitor``,
  and nothing of the control plane. Every node's snapshot holds ``svc-0`` .. ``svc-19``;
  a push sets K new snapshots, made before the clock starts as the publisher's endpoint
  patch makes them (``Snapshot.with_resources``, the changed set encoded once).

Per push: from ``time.monotonic()`` at the push to the last of the K ACKs written (the
drivers' clock: the same machine clock), p50/p99 over ``--repeats``; the server's and
the drivers' CPU per stream pushed. The ratio ``gossamer / bare`` is what the xDS server
adds to the transport; ``bare`` alone is what no change to it can go below.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from _common import cpu_seconds, percentile
from _drivers import DRIVER_CORE, PLANE_CORE, DriverProc
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, wrappers_pb2
from xds_fanout_driver import CHANGED, EDS, NAMES

from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.server import Keepalive, XdsServer
from gossamer.xds.snapshot import Snapshot

HERE = Path(__file__).resolve().parent
E = ResourceType.ENDPOINT
ADS = "envoy.service.discovery.v3.AggregatedDiscoveryService"


def cla(name: str, weight: int) -> endpoint_pb2.ClusterLoadAssignment:
    """An endpoint set of 3 endpoints; ``weight`` on the first marks the push."""
    out = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    group = out.endpoints.add()
    for n in range(3):
        lb = group.lb_endpoints.add()
        lb.endpoint.address.CopyFrom(
            address_pb2.Address(
                socket_address=address_pb2.SocketAddress(
                    address=f"127.0.1.{n + 1}", port_value=8080
                )
            )
        )
        lb.load_balancing_weight.CopyFrom(wrappers_pb2.UInt32Value(value=weight if n == 0 else 1))
    return out


def node_id(i: int) -> str:
    return f"sidecar~floor~p{i}"


class BareServer:
    """The floor: streams kept as contexts, one encoded response written to many."""

    def __init__(self) -> None:
        self.streams: dict[int, Any] = {}
        self.server = grpc.aio.server(options=Keepalive().grpc_options())
        handler = grpc.stream_stream_rpc_method_handler(self._stream)  # bytes both ways
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(ADS, {"StreamAggregatedResources": handler}),)
        )
        first = discovery_pb2.DiscoveryResponse(version_info="0", nonce="0", type_url=EDS)
        for name in NAMES:
            first.resources.add().Pack(cla(name, 1))
        self._first = first.SerializeToString()

    async def start(self) -> int:
        port: int = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    async def _stream(self, request_iterator: Any, context: Any) -> None:
        msg = await context.read()
        if msg is grpc.aio.EOF:
            return
        first = discovery_pb2.DiscoveryRequest.FromString(msg)
        i = int(first.node.id.rsplit("~p", 1)[1])
        self.streams[i] = context
        try:
            await context.write(self._first)
            while (msg := await context.read()) is not grpc.aio.EOF:
                discovery_pb2.DiscoveryRequest.FromString(msg)
        finally:
            self.streams.pop(i, None)

    def prepare(self, push: int, targets: range) -> Any:
        resp = discovery_pb2.DiscoveryResponse(
            version_info=str(push), nonce=str(push), type_url=EDS
        )
        any_pb2.Any.Pack(resp.resources.add(), cla(CHANGED, push))
        return resp.SerializeToString(), [self.streams[i] for i in targets]

    async def push(self, prepared: Any) -> None:
        payload, contexts = prepared
        await asyncio.gather(*(c.write(payload) for c in contexts))

    async def stop(self) -> None:
        await self.server.stop(1.0)


class GossamerServer:
    """``XdsServer`` + ``SnapshotCache`` + ``XdsMonitor``: the xDS half of the plane."""

    def __init__(self) -> None:
        self.cache = SnapshotCache()
        self.server = XdsServer(self.cache, XdsMonitor())
        self.serializer = Serializer()
        self.base = Snapshot.build({E: {n: cla(n, 1) for n in NAMES}}, self.serializer)

    async def start(self, streams: int) -> int:
        for i in range(streams):
            self.cache.set(node_id(i), self.base)
        return await self.server.start("127.0.0.1", 0)

    def prepare(self, push: int, targets: range) -> Any:
        changed = {CHANGED: self.serializer.versioned(E, CHANGED, cla(CHANGED, push))}
        now = time.monotonic()
        out = []
        for i in targets:
            snap = self.cache.get(node_id(i))
            assert snap is not None, f"{node_id(i)} has no snapshot: its stream ended"
            out.append((node_id(i), snap.with_resources(E, changed, now)))
        return out

    async def push(self, prepared: Any) -> None:
        for node, snap in prepared:
            self.cache.set(node, snap)

    async def stop(self) -> None:
        await self.server.stop(1.0)


async def start_drivers(
    port: int, streams: int, count: int, pin: bool, tmp: Path, tag: str
) -> list[DriverProc]:
    out = []
    per = -(-streams // count)
    for d in range(count):
        first, n = d * per, min(per, streams - d * per)
        log = tmp / f"{tag}-{d}.log"
        cmd = [
            sys.executable,
            str(HERE / "xds_fanout_driver.py"),
            "127.0.0.1",
            str(port),
            str(first),
            str(n),
        ]
        if pin:
            cmd += ["--cpu", str(DRIVER_CORE)]
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=err
            )
        out.append(DriverProc(proc, [node_id(i) for i in range(first, first + n)], log))
    return out


class Run:
    """One server, its drivers and its measurements."""

    def __init__(self, name: str, server: Any, drivers: list[DriverProc]) -> None:
        self.name = name
        self.server = server
        self.drivers = drivers
        self.times: dict[int, list[float]] = {}
        self.cpu: dict[int, float] = {}
        self.driver_cpu: dict[int, float] = {}

    async def ask_all(self, cmd: dict[str, Any], within: float = 120.0) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(d.ask(cmd, within) for d in self.drivers)))

    async def once(self, push: int, fanout: int) -> None:
        targets = range(fanout)
        await self.ask_all({"cmd": "expect", "push": push, "streams": list(targets)})
        prepared = self.server.prepare(push, targets)
        drivers0 = sum(r["cpu_s"] for r in await self.ask_all({"cmd": "stats"}))
        cpu0 = cpu_seconds(os.getpid())
        t0 = time.monotonic()
        await self.server.push(prepared)
        replies = await self.ask_all({"cmd": "wait", "push": push, "within": 60})
        self.cpu[fanout] = self.cpu.get(fanout, 0.0) + cpu_seconds(os.getpid()) - cpu0
        drivers1 = sum(r["cpu_s"] for r in await self.ask_all({"cmd": "stats"}))
        self.driver_cpu[fanout] = self.driver_cpu.get(fanout, 0.0) + drivers1 - drivers0
        lost = sum(r["missing"] for r in replies)
        if lost:
            raise RuntimeError(f"{self.name}: push {push} not ACKed by {lost} of {fanout} streams")
        self.times.setdefault(fanout, []).append(
            max(r["t"] for r in replies if r["t"] is not None) - t0
        )


@contextlib.asynccontextmanager
async def serving(
    name: str, server: Any, port: int, streams: int, drivers: int, pin: bool, tmp: Path
) -> AsyncIterator[Run]:
    """``server`` (started on ``port``) with ``drivers`` processes of ``streams`` bare
    clients, all streams holding their first response; the drivers stopped on exit."""
    run = Run(name, server, [])
    try:
        run.drivers = await start_drivers(port, streams, drivers, pin, tmp, name)
        await run.ask_all({"cmd": "ready", "within": 300}, 330)
        yield run
    finally:
        for d in run.drivers:
            await d.stop()


@contextlib.asynccontextmanager
async def running(args: argparse.Namespace, tmp: Path) -> AsyncIterator[list[Run]]:
    bare, ours = BareServer(), GossamerServer()
    ports = {"bare": await bare.start(), "gossamer": await ours.start(args.streams)}
    try:
        async with contextlib.AsyncExitStack() as stack:
            yield [
                await stack.enter_async_context(
                    serving(name, server, ports[name], args.streams, args.drivers, args.pin, tmp)
                )
                for name, server in (("bare", bare), ("gossamer", ours))
            ]
    finally:
        await bare.stop()
        await ours.stop()


async def bare_floor(
    streams: int, fanout: int, repeats: int, drivers: int, pin: bool, tmp: Path
) -> list[float]:
    """The floor alone, for another bench to measure in its own run: ``repeats`` pushes
    to the first ``fanout`` of ``streams`` streams of bare clients, each from the push to
    the last ACK (s). Pinned as here when ``pin`` (the caller runs on ``PLANE_CORE``)."""
    bare = BareServer()
    try:
        port = await bare.start()
        async with serving("floor", bare, port, streams, drivers, pin, tmp) as run:
            await run.once(2, fanout)  # not measured: the first write to each stream
            run.times.clear()
            for push in range(3, repeats + 3):
                await run.once(push, fanout)
            return run.times[fanout]
    finally:
        await bare.stop()


async def run(args: argparse.Namespace) -> None:
    fanouts = [int(f) for f in args.fanouts.split(",")]
    if max(fanouts) > args.streams:
        raise SystemExit(f"--fanouts: at most --streams ({args.streams}), got {max(fanouts)}")
    with tempfile.TemporaryDirectory(prefix="xds-fanout-") as tmp:
        async with running(args, Path(tmp)) as runs:
            print(
                f"{args.streams} streams per server, {args.drivers} drivers each; pin: {args.pin}"
            )
            push = 1
            for fanout in fanouts:
                for _ in range(args.repeats):
                    for r in runs:
                        push += 1
                        await r.once(push, fanout)
            report(runs, fanouts, args.repeats)


def report(runs: list[Run], fanouts: list[int], repeats: int) -> None:
    bare, ours = runs
    for fanout in fanouts:
        print(f"fan-out {fanout} streams ({repeats} pushes each):")
        for r in runs:
            t = r.times[fanout]
            per = 1e6 / (fanout * repeats)
            print(
                f"  {r.name:9s} all ACKed p50 {percentile(t, 50) * 1e3:7.1f} ms  p99 "
                f"{percentile(t, 99) * 1e3:7.1f} ms   server CPU "
                f"{r.cpu[fanout] * per:6.0f} us/stream"
                f"   drivers' CPU {r.driver_cpu[fanout] * per:6.0f} us/stream"
            )
        ratio = percentile(ours.times[fanout], 50) / percentile(bare.times[fanout], 50)
        cpu = ours.cpu[fanout] / bare.cpu[fanout] if bare.cpu[fanout] else float("nan")
        print(f"  gossamer / bare: p50 {ratio:.2f}x, server CPU {cpu:.2f}x")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--streams", type=int, default=1000)
    p.add_argument("--fanouts", default="100,221,943")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--drivers", type=int, default=2, help="driver processes per server")
    p.add_argument("--no-pin", dest="pin", action="store_false")
    args = p.parse_args()
    args.pin = args.pin and {PLANE_CORE, DRIVER_CORE} <= os.sched_getaffinity(0)
    if args.pin:
        os.sched_setaffinity(0, {PLANE_CORE})
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
