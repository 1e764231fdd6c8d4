import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import pytest

from gossamer.agent.config import HealthCheck
from gossamer.agent.health import HealthTracker, health_check_messages, probe
from gossamer.ports import free_port
from gossamer.testing.backends import HttpBackend


def test_first_result_decides_then_thresholds() -> None:
    t = HealthTracker(healthy_threshold=2, unhealthy_threshold=3)
    assert t.observe(None) == "healthy"
    assert t.observe("down") is None
    assert t.observe("down") is None
    assert t.observe(None) is None  # streak broken
    assert [t.observe("down") for _ in range(3)] == [None, None, "unhealthy"]
    assert t.state == "unhealthy" and t.last_error == "down"
    assert t.observe(None) is None
    assert t.observe(None) == "healthy"


def test_retune_keeps_the_verdict_and_changes_the_thresholds() -> None:
    t = HealthTracker(healthy_threshold=1, unhealthy_threshold=2)
    assert t.observe(None) == "healthy"
    assert t.observe("down") is None  # one failure of two
    t.retune(healthy_threshold=1, unhealthy_threshold=3, fresh=False)
    assert t.state == "healthy"
    # the streak starts over under the new thresholds
    assert [t.observe("down") for _ in range(3)] == [None, None, "unhealthy"]
    t.retune(healthy_threshold=4, unhealthy_threshold=1, fresh=False)
    assert [t.observe(None) for _ in range(4)] == [None, None, None, "healthy"]


def test_a_fresh_check_decides_at_once_and_only_reports_a_change() -> None:
    t = HealthTracker(healthy_threshold=3, unhealthy_threshold=3)
    assert t.observe(None) == "healthy"
    t.retune(healthy_threshold=3, unhealthy_threshold=3, fresh=True)
    assert t.state == "healthy"  # the old verdict stands until the new check answers
    assert t.observe("GET /ready answered 500") == "unhealthy"
    t.retune(healthy_threshold=3, unhealthy_threshold=3, fresh=True)
    assert t.observe("still down") is None  # same verdict: nothing to report
    assert t.observe(None) is None  # and thresholds apply again after the first answer


def test_first_failure_is_unhealthy_at_once() -> None:
    t = HealthTracker()
    assert t.observe("refused") == "unhealthy"


def _check(**kwargs: Any) -> HealthCheck:
    return HealthCheck(timeout=timedelta(seconds=2), interval=timedelta(seconds=2), **kwargs)


@pytest.mark.asyncio
async def test_http_probe_against_a_real_server() -> None:
    async with HttpBackend("app") as app:
        host, port = app.address
        assert await probe(_check(type="http", path="/healthz"), host, port) is None
        error = await probe(_check(type="http", path="/status/503"), host, port)
        assert error == "GET /status/503 answered 503"
        assert app.requests_by_path["/healthz"] == 1
    error = await probe(_check(type="http"), host, port)
    assert error is not None and "failed" in error


@pytest.mark.asyncio
async def test_http_probe_times_out() -> None:
    async with HttpBackend("slow") as app:
        check = HealthCheck(
            type="http",
            path="/delay/2000",
            timeout=timedelta(milliseconds=100),
            interval=timedelta(seconds=1),
        )
        error = await probe(check, *app.address)
    assert error is not None and "0.1 s" in error


@pytest.mark.asyncio
async def test_tcp_probe() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    async with server:
        port = server.sockets[0].getsockname()[1]
        assert await probe(_check(), "127.0.0.1", port) is None
    closed = free_port("127.0.0.1")
    error = await probe(_check(), "127.0.0.1", closed)
    assert error is not None and f"127.0.0.1:{closed}" in error


@contextlib.asynccontextmanager
async def _grpc_health_server(statuses: dict[str, int]) -> AsyncIterator[int]:
    request_cls, response_cls = health_check_messages()

    async def check(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if request.service not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return response_cls(status=statuses[request.service])

    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {
            "Check": grpc.unary_unary_rpc_method_handler(
                check,
                request_deserializer=request_cls.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        },
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


@pytest.mark.asyncio
async def test_grpc_probe() -> None:
    async with _grpc_health_server({"": 1, "shop.Cart": 2}) as port:
        assert await probe(_check(type="grpc"), "127.0.0.1", port) is None
        error = await probe(_check(type="grpc", grpcService="shop.Cart"), "127.0.0.1", port)
        assert error is not None and "status 2" in error
        error = await probe(_check(type="grpc", grpcService="nope"), "127.0.0.1", port)
        assert error is not None and "NOT_FOUND" in error
    error = await probe(_check(type="grpc"), "127.0.0.1", port)
    assert error is not None and "UNAVAILABLE" in error
