"""``authz serve``'s transport: checks run on the gRPC server's worker threads while the
event loop reports them (every decision of concurrent checks reaches the sink, counted
exactly), and ``reuse_port`` lets two processes' servers share one address while a taken
port without it is refused with a clear error."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from gossamer.decisionpoint.recorder import DecisionBatcher, DecisionQueue, DecisionRecord
from gossamer.decisionpoint.serve import ServeSettings, serve
from gossamer.errors import ConfigError
from gossamer.polling import wait_until

WEB = "spiffe://shop.local/ns/default/sa/web"


def test_records_appended_from_threads_all_reach_the_sink() -> None:
    got: list[DecisionRecord] = []

    async def sink(batch: list[DecisionRecord]) -> None:
        got.extend(batch)

    def appender(q: DecisionQueue, k: int) -> None:
        for i in range(2000):
            q.append(DecisionRecord(f"{k}-{i}", 0.0, True, "default/cart", WEB, "", "GET",
                                    "/", "", "svc:default/cart"))  # fmt: skip

    def _append_from_threads(q: DecisionQueue) -> None:
        threads = [threading.Thread(target=appender, args=(q, k)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)

    async def main() -> DecisionQueue:
        q = DecisionQueue()
        batcher = DecisionBatcher(q, sink, linger_s=0.01)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(batcher.run())
            for n in range(1, 4):  # the queue empties between rounds: each wakes the batcher
                await asyncio.to_thread(_append_from_threads, q)
                await wait_until(
                    lambda n=n: len(got) >= n * 4 * 2000, timeout=10, what="all reported"
                )
            task.cancel()
        return q

    q = asyncio.run(main())
    assert len(got) == q.recorded == 3 * 4 * 2000 and q.dropped == 0
    assert len({r.request_id for r in got}) == 4 * 2000


def _graph(tmp_path: Path) -> Path:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"version": "1", "graph": {}, "issuers": []}))
    return path


def _check() -> external_auth_pb2.CheckRequest:
    req = external_auth_pb2.CheckRequest()
    req.attributes.source.principal = WEB
    req.attributes.request.http.method = "GET"
    req.attributes.request.http.path = "/"
    req.attributes.context_extensions["service"] = "default/cart"
    return req


def test_two_servers_share_a_port_with_reuse_port(tmp_path: Path) -> None:
    graph, log = _graph(tmp_path), tmp_path / "decisions.jsonl"

    async def main() -> None:
        stops = [asyncio.Event(), asyncio.Event()]
        ports: list[int] = []
        up = asyncio.Event()

        def listening(host: str, port: int) -> None:
            ports.append(port)
            up.set()

        async with asyncio.TaskGroup() as tg:
            first = ServeSettings(("127.0.0.1", 0), graph, decisions_log=log, reuse_port=True)
            serving_first = tg.create_task(serve(first, stops[0], listening))
            async with asyncio.timeout(10):
                await up.wait()
            up.clear()
            second = ServeSettings(
                ("127.0.0.1", ports[0]), graph, decisions_log=log, reuse_port=True
            )
            tg.create_task(serve(second, stops[1], listening))
            async with asyncio.timeout(10):
                await up.wait()
            assert ports == [ports[0], ports[0]]
            stops[0].set()  # the other still answers on the address
            # (once the first is closed: a connection the kernel queued on a listener that
            # is closing is reset)
            async with asyncio.timeout(10):
                await serving_first
            async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[0]}") as channel:
                answer = await external_auth_pb2_grpc.AuthorizationStub(channel).Check(_check())
            assert answer.status.code != 0 and "may not" in answer.denied_response.body
            stops[1].set()

    asyncio.run(main())


def test_a_taken_port_without_reuse_port_is_refused(tmp_path: Path) -> None:
    graph, log = _graph(tmp_path), tmp_path / "decisions.jsonl"

    async def main() -> None:
        stop, up = asyncio.Event(), asyncio.Event()
        ports: list[int] = []

        def listening(host: str, port: int) -> None:
            ports.append(port)
            up.set()

        async with asyncio.TaskGroup() as tg:
            first = ServeSettings(("127.0.0.1", 0), graph, decisions_log=log)
            tg.create_task(serve(first, stop, listening))
            async with asyncio.timeout(10):
                await up.wait()
            try:
                taken = ServeSettings(("127.0.0.1", ports[0]), graph, decisions_log=log)
                with pytest.raises(ConfigError, match=r"--listen: cannot listen on 127\.0\.0\.1"):
                    await serve(taken, asyncio.Event())
            finally:
                stop.set()

    asyncio.run(main())
