"""gRPC through the mesh, as a client sees it: unary and server-streaming calls east-west and
through the gateway; a client's deadline (``grpc-timeout``) shorter than the route's
timeout is answered DEADLINE_EXCEEDED by the mesh at that deadline, and the route's timeout
bounds a longer one; ``retryOn: [unavailable]`` makes a flaky instance invisible."""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import httpx
import pytest
from protocol_mesh import SERVICE, ProtocolMesh, protocol_mesh, route

from gossamer.polling import wait_until
from gossamer.testing.backends import EchoClient, GrpcBackend
from gossamer.testing.backends.grpc_echo import UNARY
from gossamer.types import Manifest

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WHERE = ("east-west", "ingress")
DEADLINE_EXCEEDED = "4"
OK = "0"


class ScriptedGrpc(GrpcBackend):
    """A ``GrpcBackend`` whose Unary waits ``delay`` seconds first, and answers UNAVAILABLE
    to call number n (from 0) when ``fails(n)``."""

    def __init__(
        self,
        name: str,
        host: str,
        *,
        delay: float = 0.0,
        fails: Callable[[int], bool] = lambda n: False,
    ) -> None:
        super().__init__(name, host)
        self.delay = delay
        self.fails = fails
        self.failed = 0

    async def _unary(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        n = self.calls["Unary"]
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.fails(n):
            self.calls["Unary"] += 1
            self.failed += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "flaky")
        return await super()._unary(request, context)


async def ready(mesh: ProtocolMesh, where: str) -> None:
    host, port = mesh.east_west if where == "east-west" else mesh.ingress

    async def answered() -> bool:
        async with EchoClient((host, port)) as client:
            try:
                await client.unary(b"ping", timeout_s=2)
                return True
            except grpc.aio.AioRpcError:
                return False

    await wait_until(answered, timeout=30, what=f"a gRPC answer {where}")


async def raw_unary(url: str, grpc_timeout: str) -> tuple[str, float]:
    """One Unary call with ``grpc-timeout`` sent but not enforced by the client (grpc
    clients enforce their deadline themselves): (grpc-status, seconds taken). Only a
    trailers-only answer (status in the headers) is expected here."""
    body = b"hi"
    frame = struct.pack(">?I", False, len(body)) + body
    headers = {"content-type": "application/grpc", "te": "trailers", "grpc-timeout": grpc_timeout}
    started = time.monotonic()
    async with httpx.AsyncClient(http1=False, http2=True, timeout=30, trust_env=False) as c:
        r = await c.post(url + UNARY, content=frame, headers=headers)
    return r.headers.get("grpc-status", f"http {r.status_code}"), time.monotonic() - started


async def test_unary_and_server_streaming_east_west_and_through_the_gateway(
    tmp_path: Path,
) -> None:
    async with (
        GrpcBackend("ratings-1", "127.0.0.3") as app,
        protocol_mesh(tmp_path, [app.address], protocol="grpc") as mesh,
    ):
        for where in WHERE:
            await ready(mesh, where)
            host, port = mesh.east_west if where == "east-west" else mesh.ingress
            async with EchoClient((host, port)) as client:
                assert await client.unary(b"x" * 100_000) == b"ratings-1:" + b"x" * 100_000
                replies = await client.stream(500)
                assert replies == [f"ratings-1:{i}".encode() for i in range(500)], where


@pytest.mark.parametrize(
    ("route_timeout", "client_deadline", "answered_after"),
    [("10s", "500m", 0.5), ("1s", "10S", 1.0)],
    ids=["client-deadline-wins", "route-timeout-bounds"],
)
async def test_the_shorter_of_deadline_and_route_timeout_ends_a_slow_call(
    tmp_path: Path, route_timeout: str, client_deadline: str, answered_after: float
) -> None:
    # The method takes 3 s; the mesh answers DEADLINE_EXCEEDED at the shorter bound.
    rules = [{"destinations": [{"service": SERVICE}], "timeout": route_timeout}]
    extra = [route(rules), route(rules, gateway=True)]
    async with (
        ScriptedGrpc("slow", "127.0.0.3") as app,
        protocol_mesh(tmp_path, [app.address], protocol="grpc", extra=extra) as mesh,
    ):
        for where in WHERE:
            await ready(mesh, where)
        app.delay = 3.0
        for where in WHERE:
            status, took = await raw_unary(mesh.url(where), client_deadline)
            assert status == DEADLINE_EXCEEDED, where
            assert answered_after <= took < answered_after + 1.5, (where, took)


async def test_retry_on_unavailable_hides_a_flaky_instance(tmp_path: Path) -> None:
    flaky = ScriptedGrpc("flaky", "127.0.0.3", fails=lambda n: n % 2 == 1)
    good = ScriptedGrpc("good", "127.0.0.4")
    async with (
        flaky,
        good,
        protocol_mesh(tmp_path, [flaky.address, good.address], protocol="grpc") as mesh,
        EchoClient(mesh.east_west) as client,
    ):
        await ready(mesh, "east-west")

        async def outcomes(n: int) -> Counter[str]:
            seen: Counter[str] = Counter()
            for _ in range(n):
                try:
                    seen[(await client.unary(b"q", timeout_s=5)).split(b":")[0].decode()] += 1
                except grpc.aio.AioRpcError as exc:
                    seen[exc.code().name] += 1
            return seen

        def retrying_on(*conditions: str) -> Manifest:
            retries = {"attempts": 3, "retryOn": list(conditions)}
            return route([{"destinations": [{"service": SERVICE}], "retries": retries}])

        # Retries on other conditions let UNAVAILABLE through to the client ...
        await mesh.apply([retrying_on("connect-failure")])
        assert (await outcomes(100))["UNAVAILABLE"] > 0
        # ... a retry on unavailable hides it.
        await mesh.apply([retrying_on("unavailable")])
        before = flaky.failed
        seen = await outcomes(200)
        assert set(seen) <= {"flaky", "good"} and sum(seen.values()) == 200, seen
        assert flaky.failed - before >= 20, "the flaky instance failed, and retries hid it"
