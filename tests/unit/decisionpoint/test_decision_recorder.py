"""The decision point's decisions on their way out: the queue the check path appends to
(bounded, drops counted), the batcher (batches, latency, retries, refusals), what a check
records, and ``authz serve --graph --decisions-log`` writing them through the real gRPC
server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import struct_pb2

from gossamer.authz.engine import build_state
from gossamer.authz.snapshot import dump
from gossamer.decisionpoint.decision import DecisionPoint, Policy
from gossamer.decisionpoint.recorder import DecisionBatcher, DecisionQueue, DecisionRecord
from gossamer.decisionpoint.serve import ServeSettings, serve
from gossamer.decisionpoint.service import AuthorizationServicer
from gossamer.errors import ConfigError, ReportRefusedError
from gossamer.model.access_policy import AccessPolicy
from gossamer.polling import Backoff, wait_until

ISSUER = "https://idp.example"
WEB = "spiffe://shop.local/ns/default/sa/web"


def _record(i: int, allowed: bool = True) -> DecisionRecord:
    return DecisionRecord(
        f"r-{i}", 1.0 * i, allowed, "default/cart", WEB, "", "GET", "/a?q=1", "", "svc:default/cart"
    )


def test_the_queue_is_bounded_and_counts_what_it_drops() -> None:
    q = DecisionQueue(capacity=3)
    for i in range(5):
        q.append(_record(i))
    assert (len(q), q.recorded, q.dropped) == (3, 3, 2)
    assert [r.request_id for r in q.take(2)] == ["r-0", "r-1"]
    q.append(_record(9))
    assert [r.request_id for r in q.take(10)] == ["r-2", "r-9"]
    assert q.take(10) == []


def test_a_record_as_reported() -> None:
    allowed = _record(1).to_body()
    assert allowed == {
        "requestId": "r-1",
        "at": 1.0,
        "decision": "allow",
        "service": "default/cart",
        "caller": WEB,
        "endUser": "",
        "method": "GET",
        "path": "/a",
        "reason": "GET granted on svc:default/cart",
    }
    denied = DecisionRecord("r", 2.0, False, "default/cart", "", "jwt:i#b", "POST", "/", "no", "")
    assert denied.to_body()["decision"] == "deny" and denied.to_body()["reason"] == "no"


async def _batches(batcher: DecisionBatcher, got: list[list[DecisionRecord]], n: int) -> None:
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(batcher.run())
        await wait_until(lambda: sum(map(len, got)) >= n, timeout=10, what=f"{n} reported")
        task.cancel()


def test_the_batcher_sends_everything_in_order_in_bounded_batches() -> None:
    got: list[list[DecisionRecord]] = []

    async def sink(batch: list[DecisionRecord]) -> None:
        got.append(batch)

    async def main() -> None:
        q = DecisionQueue()
        for i in range(1234):
            q.append(_record(i))
        await _batches(DecisionBatcher(q, sink, max_batch=500), got, 1234)

    asyncio.run(main())
    assert [len(b) for b in got] == [500, 500, 234]
    assert [r.request_id for b in got for r in b] == [f"r-{i}" for i in range(1234)]


def test_one_decision_is_reported_within_a_second() -> None:
    sent_at: list[float] = []

    async def sink(batch: list[DecisionRecord]) -> None:
        sent_at.append(time.monotonic())

    async def main() -> float:
        q = DecisionQueue()
        batcher = DecisionBatcher(q, sink)
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(batcher.run())
            await asyncio.sleep(0)  # the batcher waits for a record
            start = time.monotonic()
            q.append(_record(1))
            await wait_until(lambda: bool(sent_at), timeout=5, what="reported")
            task.cancel()
        return sent_at[0] - start

    assert asyncio.run(main()) < 1.0


def test_a_failing_sink_is_retried_and_a_refused_batch_dropped() -> None:
    calls: list[str] = []

    async def sink(batch: list[DecisionRecord]) -> None:
        first = batch[0].request_id
        calls.append(first)
        if first == "r-0" and calls.count("r-0") < 3:
            raise ConnectionError("control plane restarting")
        if first == "r-1":
            raise ReportRefusedError("422")

    async def main() -> DecisionBatcher:
        q = DecisionQueue()
        fast = Backoff(initial=0.01, maximum=0.02)
        batcher = DecisionBatcher(q, sink, max_batch=1, linger_s=0.01, backoff=fast)
        for i in range(3):
            q.append(_record(i))
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(batcher.run())
            await wait_until(lambda: "r-2" in calls, timeout=10, what="the third batch")
            task.cancel()
        return batcher

    batcher = asyncio.run(main())
    assert calls == ["r-0", "r-0", "r-0", "r-1", "r-2"]
    assert (batcher.stats.sent, batcher.stats.refused, batcher.stats.failures) == (2, 1, 2)


POLICY = {
    "apiVersion": "gossamer.dev/v1",
    "kind": "AccessPolicy",
    "metadata": {"name": "shop"},
    "spec": {
        "policyClasses": ["shop"],
        "userAttributes": {"customers": ["shop"], "frontends": ["shop"]},
        "objectAttributes": {
            "svc:default/cart": ["shop"],
            "svc:default/cart:/orders": ["svc:default/cart"],
        },
        "users": {WEB: ["frontends"]},
        "associations": [
            {"userAttribute": "frontends", "target": "svc:default/cart", "rights": ["GET"]},
            {"userAttribute": "customers", "target": "svc:default/cart:/orders", "rights": ["GET"]},
        ],
    },
}


def _document() -> dict[str, object]:
    state = build_state([AccessPolicy.model_validate(POLICY)], [])
    mapping = {"groups": {"customers": "customers"}}
    return {
        "version": "1",
        "graph": json.loads(json.dumps(dump(state.graph))),
        "issuers": [{"issuer": ISSUER, "claimsToAttributes": mapping}],
    }


def _check(request_id: str, path: str, sub: str | None) -> external_auth_pb2.CheckRequest:
    req = external_auth_pb2.CheckRequest()
    a = req.attributes
    a.source.principal = WEB
    a.request.http.method = "GET"
    a.request.http.path = path
    a.request.http.headers["x-request-id"] = request_id
    a.context_extensions["service"] = "default/cart"
    if sub is not None:
        payload = struct_pb2.Struct()
        payload.update({"iss": ISSUER, "sub": sub, "groups": ["customers"]})
        meta = a.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"]
        meta.fields["payload"].struct_value.CopyFrom(payload)
    return req


def test_a_check_records_who_what_and_the_request_id() -> None:
    q = DecisionQueue()
    servicer = AuthorizationServicer(DecisionPoint(Policy.of(_document(), "test")), q)
    servicer.check(_check("id-1", "/orders/7?x=1", "bob"))
    servicer.check(_check("id-2", "/items", "bob"))
    servicer.check(_check("id-3", "/items", None))
    allowed, denied, service_only = (r.to_body() for r in q.take(3))
    assert allowed["requestId"] == "id-1" and allowed["decision"] == "allow"
    assert allowed["endUser"] == f"jwt:{ISSUER}#bob" and allowed["caller"] == WEB
    assert allowed["path"] == "/orders/7"
    assert allowed["reason"] == "GET granted on svc:default/cart:/orders"
    assert denied["requestId"] == "id-2" and denied["decision"] == "deny"
    assert denied["reason"] == f"jwt:{ISSUER}#bob (as customers) may not GET svc:default/cart"
    assert service_only["decision"] == "allow" and service_only["endUser"] == ""


def test_decisions_log_goes_with_graph_only(tmp_path: Path) -> None:
    settings = ServeSettings(
        ("127.0.0.1", 0), server="http://127.0.0.1:1", token="t", decisions_log=tmp_path / "d"
    )
    with pytest.raises(ConfigError, match="--decisions-log goes with --graph"):
        settings.check()


def test_authz_serve_logs_each_decision_with_its_request_id(tmp_path: Path) -> None:
    graph, log = tmp_path / "graph.json", tmp_path / "decisions.jsonl"
    graph.write_text(json.dumps(_document()))

    async def main() -> None:
        stop, listening = asyncio.Event(), asyncio.Event()
        bound: list[int] = []

        def on_listening(host: str, port: int) -> None:
            bound.append(port)
            listening.set()

        settings = ServeSettings(("127.0.0.1", 0), graph_file=graph, decisions_log=log)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(serve(settings, stop, on_listening))
            async with asyncio.timeout(10):
                await listening.wait()
            async with grpc.aio.insecure_channel(f"127.0.0.1:{bound[0]}") as channel:
                stub = external_auth_pb2_grpc.AuthorizationStub(channel)
                for i in range(20):
                    await stub.Check(_check(f"req-{i}", "/orders/1" if i % 2 else "/x", "bob"))

            def logged() -> int:
                return len(log.read_text().splitlines()) if log.exists() else 0

            await wait_until(lambda: logged() >= 20, timeout=5, what="20 decisions logged")
            stop.set()

    asyncio.run(main())
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["requestId"] for x in lines] == [f"req-{i}" for i in range(20)]
    assert [x["decision"] for x in lines[:2]] == ["deny", "allow"]
    assert oct(log.stat().st_mode & 0o777) == "0o600"
