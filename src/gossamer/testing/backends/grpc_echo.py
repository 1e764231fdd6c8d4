"""A real gRPC backend in-process (grpc.aio), with raw bytes in and out: no protoc.

Service ``gossamer.test.Echo``:

* ``Unary``: answers ``<name>:<request>``.
* ``Stream``: the request is a count N in ASCII (0..1000); answers N messages ``<name>:<i>``.
* ``Bidi``: answers each message with ``<name>:<message>``.

``EchoClient`` calls them (directly or through Envoy, with an ``authority`` to route on).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio

from gossamer.errors import ProcessError

SERVICE = "gossamer.test.Echo"
UNARY = f"/{SERVICE}/Unary"
STREAM = f"/{SERVICE}/Stream"
BIDI = f"/{SERVICE}/Bidi"
MAX_STREAM = 1000

Metadata = Sequence[tuple[str, str]]


class GrpcBackend:
    """``async with GrpcBackend("echo-v1", host="127.0.0.3") as backend:``."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self._bind = (host, port)
        self.address: tuple[str, int] = (host, port)
        #: calls answered, by method name ("Unary", "Stream", "Bidi")
        self.calls: Counter[str] = Counter()
        self._server: grpc.aio.Server | None = None

    @property
    def target(self) -> str:
        return _target(self.address)

    async def __aenter__(self) -> Self:
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        "Unary": grpc.unary_unary_rpc_method_handler(self._unary),
                        "Stream": grpc.unary_stream_rpc_method_handler(self._stream),
                        "Bidi": grpc.stream_stream_rpc_method_handler(self._bidi),
                    },
                ),
            )
        )
        try:
            port = server.add_insecure_port(_target(self._bind))
        except RuntimeError as exc:
            raise ProcessError(
                f"GrpcBackend {self.name}: cannot listen on {_target(self._bind)}: {exc}"
            ) from exc
        self.address = (self._bind[0], port)
        await server.start()
        self._server = server
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace=1.0)

    async def _unary(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self.calls["Unary"] += 1
        return self.name.encode() + b":" + request

    async def _stream(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        self.calls["Stream"] += 1
        try:
            count = int(request.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            count = -1
        if not 0 <= count <= MAX_STREAM:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Stream wants a count 0..{MAX_STREAM} in ASCII, got {request!r}",
            )
        for i in range(count):
            yield f"{self.name}:{i}".encode()

    async def _bidi(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        self.calls["Bidi"] += 1
        async for message in requests:
            yield self.name.encode() + b":" + message


class EchoClient:
    """Calls ``gossamer.test.Echo`` at ``address``; ``authority`` sets the :authority."""

    def __init__(self, address: tuple[str, int], *, authority: str | None = None) -> None:
        options = [("grpc.default_authority", authority)] if authority else []
        self._channel = grpc.aio.insecure_channel(_target(address), options=options)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._channel.close()

    async def unary(
        self, data: bytes, *, timeout_s: float = 10.0, metadata: Metadata = ()
    ) -> bytes:
        call = self._channel.unary_unary(UNARY)
        reply: bytes = await call(data, timeout=timeout_s, metadata=tuple(metadata) or None)
        return reply

    async def stream(
        self, count: int, *, timeout_s: float = 10.0, metadata: Metadata = ()
    ) -> list[bytes]:
        call = self._channel.unary_stream(STREAM)
        return [
            reply
            async for reply in call(
                str(count).encode(), timeout=timeout_s, metadata=tuple(metadata) or None
            )
        ]

    async def bidi(
        self, messages: Iterable[bytes], *, timeout_s: float = 10.0, metadata: Metadata = ()
    ) -> list[bytes]:
        call = self._channel.stream_stream(BIDI)

        async def requests() -> AsyncIterator[bytes]:
            for message in messages:
                yield message

        return [
            reply
            async for reply in call(requests(), timeout=timeout_s, metadata=tuple(metadata) or None)
        ]


def _target(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
