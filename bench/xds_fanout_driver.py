"""The clients of ``bench/xds_fanout.py``: bare SotW EDS subscribers over gRPC.

Run by the bench: ``xds_fanout_driver.py HOST PORT FIRST COUNT [--per-channel K] [--cpu C]``.
Streams ``FIRST`` .. ``FIRST + COUNT - 1`` subscribe as ``sidecar~floor~p<i>`` to the
endpoint sets ``svc-0`` .. ``svc-19``; every response is decoded (each resource into a
``ClusterLoadAssignment``) and ACKed at once. A push carries ``svc-0`` with its first
endpoint's weight set to the push's number; the time a stream wrote the ACK of that push is
what the bench measures. JSON lines on stdin (``{"cmd": ..., "id": ...}``), one reply each:
``ready`` (every stream has its first response), ``expect`` (arm: these streams will get
push ``p``), ``wait`` (until they all ACKed it: the last ACK's ``time.monotonic()``),
``stats``, ``quit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

import grpc
from _common import cpu_seconds
from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2

EDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
NAMES = [f"svc-{i}" for i in range(20)]
CHANGED = NAMES[0]


class Expectation:
    def __init__(self, streams: set[int]) -> None:
        self.left = streams
        self.last = 0.0
        self.done = asyncio.Event()
        if not streams:
            self.done.set()


class Driver:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.expect: dict[int, Expectation] = {}
        self.first = asyncio.Event()
        self.answered: set[int] = set()
        self.calls: list[Any] = []
        self.channels: list[grpc.aio.Channel] = []

    def acked(self, stream: int, push: int, at: float) -> None:
        if stream not in self.answered:
            self.answered.add(stream)
            if len(self.answered) == self.args.count:
                self.first.set()
        exp = self.expect.get(push)
        if exp is not None and stream in exp.left:
            exp.left.discard(stream)
            exp.last = max(exp.last, at)
            if not exp.left:
                exp.done.set()

    async def run_stream(self, i: int, channel: grpc.aio.Channel) -> None:
        stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
        call = stub.StreamAggregatedResources()
        self.calls.append(call)
        node = base_pb2.Node(id=f"sidecar~floor~p{i}", cluster="floor")
        await call.write(
            discovery_pb2.DiscoveryRequest(node=node, type_url=EDS, resource_names=NAMES)
        )
        while (resp := await call.read()) is not grpc.aio.EOF:
            push = -1
            for res in resp.resources:
                cla = endpoint_pb2.ClusterLoadAssignment.FromString(res.value)
                if cla.cluster_name == CHANGED:
                    push = cla.endpoints[0].lb_endpoints[0].load_balancing_weight.value
            ack = discovery_pb2.DiscoveryRequest(
                version_info=resp.version_info, response_nonce=resp.nonce, type_url=EDS,
                resource_names=NAMES,
            )  # fmt: skip
            await call.write(ack)
            self.acked(i, push, time.monotonic())

    async def serve(self, tg: asyncio.TaskGroup) -> None:
        a = self.args
        options = [("grpc.use_local_subchannel_pool", 1)]
        for n, i in enumerate(range(a.first, a.first + a.count)):
            if n % a.per_channel == 0:
                self.channels.append(
                    grpc.aio.insecure_channel(f"{a.host}:{a.port}", options=options)
                )
            tg.create_task(self.run_stream(i, self.channels[-1]))

    async def answer(self, cmd: dict[str, Any]) -> dict[str, Any]:
        match cmd["cmd"]:
            case "ready":
                async with asyncio.timeout(cmd.get("within", 120)):
                    await self.first.wait()
                return {}
            case "expect":
                mine = {
                    s
                    for s in cmd["streams"]
                    if self.args.first <= s < self.args.first + self.args.count
                }
                self.expect[cmd["push"]] = Expectation(mine)
                return {"armed": len(mine)}
            case "wait":
                exp = self.expect[cmd["push"]]
                try:
                    async with asyncio.timeout(cmd.get("within", 60)):
                        await exp.done.wait()
                except TimeoutError:
                    return {"t": None, "missing": len(exp.left)}
                finally:
                    del self.expect[cmd["push"]]
                return {"t": exp.last if exp.last else None, "missing": 0}
            case "stats":
                return {"cpu_s": cpu_seconds(os.getpid())}
        raise ValueError(f"unknown command {cmd['cmd']!r}")


async def main(args: argparse.Namespace) -> None:
    driver = Driver(args)
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with asyncio.TaskGroup() as tg:
        await driver.serve(tg)
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["cmd"] == "quit":
                break
            try:
                reply = await driver.answer(cmd)
            except Exception as e:
                reply = {"error": f"{type(e).__name__}: {e}"}
            sys.stdout.write(json.dumps({**reply, "id": cmd["id"]}) + "\n")
            sys.stdout.flush()
        for call in driver.calls:
            call.cancel()
    for channel in driver.channels:
        await channel.close()
    sys.stdout.write(json.dumps({"id": "quit"}) + "\n")
    sys.stdout.flush()


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("first", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--per-channel", type=int, default=25)
    p.add_argument("--cpu", type=int, default=None)
    return p.parse_args()


if __name__ == "__main__":
    parsed = parse()
    if parsed.cpu is not None:
        os.sched_setaffinity(0, {parsed.cpu})
    asyncio.run(main(parsed))
