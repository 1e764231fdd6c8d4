"""A driver process of ``bench/xds_scale.py``: many simulated proxies (``AdsClient`` over
gRPC, decoding every resource and ACKing or NACKing like Envoy) on one event loop.

Run by the bench as ``python xds_scale_driver.py HOST PORT NODES_JSON [--delta] [--cpu N]
[--per-channel K]``; it reads one JSON command per line on stdin and answers each with one
JSON line on stdout (``{"id": ..., ...}``). Every K clients share one gRPC channel (one
HTTP/2 connection; a local subchannel pool, so channels are not merged).

Times are ``time.monotonic()`` (one clock for every process of the host), taken when a
client had sent its ACK of the response that brought a resource's new content.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message

from gossamer.testing.ads_client import AdsClient, connect
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import content_version

BY_SHORT = {t.short: t for t in ResourceType}


def content_hash(msg: message.Message) -> str:
    """The control plane's version of a resource: its deterministic bytes, hashed
    (``gossamer.xds.serializer.Serializer``) — recomputed from what the client decoded."""
    return hashlib.sha256(msg.SerializeToString(deterministic=True)).hexdigest()[:16]


@dataclass
class Sim:
    proxy: ProxyIdentity
    client: AdsClient
    channel: grpc.aio.Channel
    #: the watched type's resources when the watch began (name -> decoded message)
    prev: dict[str, Any] = field(default_factory=dict)
    #: name -> when its new content arrived (ACK sent), since the watch began
    arrived: dict[str, float] = field(default_factory=dict)
    typed_responses: int = 0
    responses0: int = 0
    bytes0: int = 0
    resources_received: int = 0
    unexpected_ends: int = 0


class Driver:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sims: dict[str, Sim] = {}
        self.watched: ResourceType | None = None
        self.mode = "run"  # "run" | "drop" | "quit"
        self.generation = 0
        self._event = asyncio.Event()
        self.channels: list[grpc.aio.Channel] = []
        self.dropped = 0

    # -- clients ------------------------------------------------------------------------

    def setup(self, proxies: list[ProxyIdentity]) -> None:
        target = f"{self.args.host}:{self.args.port}"
        options = [
            ("grpc.max_receive_message_length", 256 * 1024 * 1024),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        for i, proxy in enumerate(proxies):
            if i % self.args.per_channel == 0:
                self.channels.append(grpc.aio.insecure_channel(target, options=options))
            client = AdsClient(proxy, delta=self.args.delta)
            sim = Sim(proxy, client, self.channels[-1])
            client.on_response = self._hook(sim)
            self.sims[proxy.node_id] = sim

    def _hook(self, sim: Sim) -> Any:
        def seen(client: AdsClient, response: Any) -> None:
            sim.resources_received += len(response.resources)
            rtype = self.watched
            if rtype is None or response.type_url != rtype.url:
                return
            sim.typed_responses += 1
            now = time.monotonic()
            prev = sim.prev
            for name, held in client.resources(rtype).items():
                old = prev.get(name)
                if old is not held.message:
                    if old is None or old != held.message:
                        sim.arrived[name] = now
                    prev[name] = held.message

        return seen

    def _changed_mode(self, mode: str) -> None:
        self.mode = mode
        self.generation += 1
        self._event.set()
        self._event = asyncio.Event()

    async def _next_change(self, within: float) -> None:
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await event.wait()

    async def keep(self, sim: Sim) -> None:
        """Keep ``sim`` connected (reconnecting with what it holds) until told to quit."""
        while self.mode != "quit":
            if self.mode == "drop":
                await self._next_change(5.0)
                continue
            generation = self.generation
            async with connect(sim.proxy, channel=sim.channel, client=sim.client):
                while self.generation == generation and not sim.client.closed:
                    await self._next_change(2.0)
                if self.mode == "drop":
                    sim.client.abort()
                    self.dropped += 1
            if self.generation == generation:  # the stream ended on its own
                sim.unexpected_ends += 1
                await asyncio.sleep(0.5)

    # -- commands -----------------------------------------------------------------------

    def watch(self, type_short: str) -> dict[str, Any]:
        rtype = BY_SHORT[type_short]
        self.watched = rtype
        for sim in self.sims.values():
            c = sim.client
            sim.prev = {n: h.message for n, h in c.resources(rtype).items()}
            sim.arrived = {}
            sim.typed_responses = 0
            sim.responses0 = c.counters.responses
            sim.bytes0 = c.counters.bytes_received
            sim.resources_received = 0
        return {"clients": len(self.sims)}

    async def expect(self, nodes: dict[str, dict[str, str]], within: float) -> dict[str, Any]:
        """Wait until each client of ``nodes`` holds those versions of the watched type;
        per node the time the last of them arrived, or what is still missing."""
        rtype = self.watched
        assert rtype is not None
        memo: dict[int, tuple[Any, str]] = {}

        def version(msg: Any) -> str:
            hit = memo.get(id(msg))
            if hit is None or hit[0] is not msg:
                hit = memo[id(msg)] = (msg, content_hash(msg))
            return hit[1]

        def missing(node: str) -> list[str]:
            held = self.sims[node].client.resources(rtype)
            return [
                n for n, v in nodes[node].items() if n not in held or version(held[n].message) != v
            ]

        deadline = time.monotonic() + within
        pending = [n for n in nodes if n in self.sims]
        while pending and time.monotonic() < deadline:
            pending = [n for n in pending if missing(n)]
            if pending:
                await asyncio.sleep(0.005)
        out: dict[str, Any] = {}
        for node, names in nodes.items():
            sim = self.sims.get(node)
            if sim is None:
                continue
            held = sim.client.resources(rtype)
            lost = missing(node)
            times = [sim.arrived[n] for n in names if n in sim.arrived]
            out[node] = {
                "t": max(times) if times and not lost else None,
                "missing": lost[:3],
                "changed_bytes": sum(held[n].message.ByteSize() for n in names if n in held),
            }
        return {"nodes": out, "traffic": self.traffic()}

    def traffic(self) -> dict[str, Any]:
        """Since the watch began: per client, responses of the watched type, all responses,
        bytes and resources received."""
        return {
            node: [
                sim.typed_responses,
                sim.client.counters.responses - sim.responses0,
                sim.client.counters.bytes_received - sim.bytes0,
                sim.resources_received,
            ]
            for node, sim in self.sims.items()
        }

    def digests(self) -> dict[str, Any]:
        """Per client and type: the content version of what it holds, recomputed from the
        decoded resources, and how many it holds."""
        out: dict[str, Any] = {}
        for node, sim in self.sims.items():
            per: dict[str, Any] = {}
            for rtype in ResourceType:
                held = sim.client.resources(rtype)
                pairs = [(n, content_hash(h.message)) for n, h in held.items()]
                per[rtype.short] = [content_version(pairs), len(pairs)]
            out[node] = per
        return out

    def versions(self, node: str, type_short: str) -> dict[str, str]:
        held = self.sims[node].client.resources(BY_SHORT[type_short])
        return {n: content_hash(h.message) for n, h in held.items()}

    def stats(self) -> dict[str, Any]:
        t = os.times()
        return {
            "cpu_s": t.user + t.system,
            "clients": len(self.sims),
            "open": sum(not s.client.closed for s in self.sims.values()),
            "nacks": sum(s.client.counters.nacks for s in self.sims.values()),
            "errors": [
                f"{s.proxy.node_id}: {s.client.protocol.types[t].last_error}"
                for s in self.sims.values()
                for t in ResourceType
                if s.client.protocol.types[t].last_error
            ][:5],
            "unexpected_ends": sum(s.unexpected_ends for s in self.sims.values()),
            "bytes": sum(s.client.counters.bytes_received for s in self.sims.values()),
        }

    async def drop(self, within: float) -> dict[str, Any]:
        """Abort every stream at once; answer once all have ended."""
        self.dropped = 0
        self._changed_mode("drop")
        deadline = time.monotonic() + within
        while self.dropped < len(self.sims):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        return {"dropped": self.dropped}

    async def handle(self, tg: asyncio.TaskGroup, cmd: dict[str, Any]) -> dict[str, Any]:
        what = cmd["cmd"]
        if what == "connect":
            for sim in self.sims.values():
                tg.create_task(self.keep(sim))
            return {"started": len(self.sims)}
        if what == "watch":
            return self.watch(cmd["type"])
        if what == "expect":
            return await self.expect(cmd["nodes"], float(cmd["within"]))
        if what == "traffic":
            return {"traffic": self.traffic()}
        if what == "digests":
            return {"digests": self.digests()}
        if what == "versions":
            return {"versions": self.versions(cmd["node"], cmd["type"])}
        if what == "stats":
            return self.stats()
        if what == "drop":
            return await self.drop(float(cmd["within"]))
        if what == "reconnect":
            self._changed_mode("run")
            return {}
        if what == "quit":
            self._changed_mode("quit")
            return {}
        raise ValueError(f"unknown command {what!r}")


async def main(args: argparse.Namespace) -> None:
    proxies = [ProxyIdentity(**p) for p in json.loads(args.nodes.read_text("utf-8"))]
    driver = Driver(args)
    driver.setup(proxies)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        async with asyncio.TaskGroup() as tg:
            while line := await reader.readline():
                cmd = json.loads(line)
                try:
                    reply = await driver.handle(tg, cmd)
                except Exception as e:  # told to the bench, which stops
                    reply = {"error": f"{type(e).__name__}: {e}"}
                sys.stdout.write(json.dumps({"id": cmd.get("id"), **reply}) + "\n")
                sys.stdout.flush()
                if cmd["cmd"] == "quit":
                    break
            driver._changed_mode("quit")
    finally:
        for channel in driver.channels:
            await channel.close()


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("nodes", type=Path, help="a JSON file: a list of ProxyIdentity fields")
    p.add_argument("--delta", action="store_true")
    p.add_argument("--cpu", type=int, default=None, help="pin this process to that core")
    p.add_argument("--per-channel", type=int, default=25)
    return p.parse_args()


if __name__ == "__main__":
    parsed = parse()
    if parsed.cpu is not None:
        os.sched_setaffinity(0, {parsed.cpu})
    asyncio.run(main(parsed))
