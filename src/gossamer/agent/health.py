"""Health checks of the local app (HTTP, gRPC ``grpc.health.v1``, TCP) and the thresholds
that turn probe results into ``healthy``/``unhealthy``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import httpx
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from gossamer.agent.config import HealthCheck
from gossamer.cancel import raise_if_cancelling

AppHealth = Literal["healthy", "unhealthy"]
_SERVING = 1


@dataclass
class HealthTracker:
    """Consecutive probe results -> health. The first result decides at once (so a fresh
    agent reports what it sees), and so does the first after ``retune``; later a change needs
    ``healthy_threshold`` passes or ``unhealthy_threshold`` failures in a row."""

    healthy_threshold: int = 1
    unhealthy_threshold: int = 2
    state: AppHealth | None = None
    last_error: str | None = None
    _streak: int = 0
    #: the next result decides at once (the check changed: the streak answered another one)
    _fresh: bool = True

    def retune(self, healthy_threshold: int, unhealthy_threshold: int, *, fresh: bool) -> None:
        """New thresholds from now on. ``fresh``: the check asks another question (type,
        path, service), so the streak so far says nothing and its first result decides at
        once, like a fresh agent's (the old verdict stands until then)."""
        self.healthy_threshold = healthy_threshold
        self.unhealthy_threshold = unhealthy_threshold
        self._streak = 0
        self._fresh = self._fresh or fresh

    def observe(self, error: str | None) -> AppHealth | None:
        """Record one probe (``error`` None = passed); the new state if it changed."""
        self.last_error = error
        seen: AppHealth = "healthy" if error is None else "unhealthy"
        if self._fresh:
            self._fresh = False
            changed = seen != self.state
            self.state = seen
            return seen if changed else None
        if seen == self.state:
            self._streak = 0
            return None
        self._streak += 1
        needed = self.healthy_threshold if seen == "healthy" else self.unhealthy_threshold
        if self._streak < needed:
            return None
        self._streak = 0
        self.state = seen
        return seen


async def probe(check: HealthCheck, address: str, port: int) -> str | None:
    """One check of the app at ``address:port``: None if it passed, else why it failed."""
    timeout = check.timeout.total_seconds()
    try:
        if check.type == "http":
            return await _http(address, port, check.path, timeout)
        if check.type == "grpc":
            return await _grpc(address, port, check.grpcService, timeout)
        return await _tcp(address, port, timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as e:
        return f"cannot connect to {address}:{port}: {e.strerror or e}"


async def _tcp(address: str, port: int, timeout: float) -> str | None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        _, writer = await asyncio.open_connection(address, port)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def _http(
    address: str,
    port: int,
    path: str,
    timeout: float,  # noqa: ASYNC109
) -> str | None:
    host = f"[{address}]" if ":" in address else address
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        try:
            response = await client.get(f"http://{host}:{port}{path}")
        except httpx.TimeoutException:
            raise_if_cancelling()
            return f"no answer within {timeout:g} s"
        except httpx.TransportError as e:
            raise_if_cancelling()
            return f"GET {path} failed: {e or type(e).__name__}"
    if response.status_code >= 400:
        return f"GET {path} answered {response.status_code}"
    return None


@functools.cache
def _health_messages() -> tuple[Any, Any]:
    """HealthCheckRequest/Response of grpc.health.v1, built in a private descriptor pool."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="gossamer/agent/grpc_health.proto", package="grpc.health.v1", syntax="proto3"
    )
    field = descriptor_pb2.FieldDescriptorProto
    request = proto.message_type.add(name="HealthCheckRequest")
    request.field.add(name="service", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    response = proto.message_type.add(name="HealthCheckResponse")
    response.field.add(name="status", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return (
        message_factory.GetMessageClass(
            pool.FindMessageTypeByName("grpc.health.v1.HealthCheckRequest")
        ),
        message_factory.GetMessageClass(
            pool.FindMessageTypeByName("grpc.health.v1.HealthCheckResponse")
        ),
    )


def health_check_messages() -> tuple[Any, Any]:
    """The request and response classes of ``grpc.health.v1.Health/Check`` (for tests)."""
    return _health_messages()


async def _grpc(
    address: str,
    port: int,
    service: str,
    timeout: float,  # noqa: ASYNC109
) -> str | None:
    request_cls, response_cls = _health_messages()
    host = f"[{address}]" if ":" in address else address
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        try:
            response = await check(request_cls(service=service), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return f"no answer within {timeout:g} s"
            return f"grpc.health.v1 Check failed: {e.code().name} {e.details() or ''}".strip()
    if response.status != _SERVING:
        return f"grpc.health.v1 says status {response.status} (1 = SERVING)"
    return None
