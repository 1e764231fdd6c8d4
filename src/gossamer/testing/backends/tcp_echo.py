"""A real TCP backend in-process: says ``<name>\\n`` on connect, then echoes every byte."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType
from typing import Self

from gossamer.errors import ProcessError


class TcpEchoBackend:
    """``async with TcpEchoBackend("db-1", host="127.0.0.2") as backend:``."""

    def __init__(self, name: str, host: str = "127.0.0.1", port: int = 0) -> None:
        self.name = name
        self._bind = (host, port)
        self.address: tuple[str, int] = (host, port)
        #: connections accepted so far (a health check's bare connect counts too)
        self.connections = 0
        #: the first bytes of each connection that sent any, in arrival order
        self.received: list[bytes] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def greeting(self) -> bytes:
        return f"{self.name}\n".encode()

    async def __aenter__(self) -> Self:
        try:
            self._server = await asyncio.start_server(self._handle, *self._bind)
        except OSError as exc:
            raise ProcessError(
                f"TcpEchoBackend {self.name}: cannot listen on "
                f"{self._bind[0]}:{self._bind[1]}: {exc}"
            ) from exc
        self.address = self._server.sockets[0].getsockname()[:2]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for writer in list(self._writers):
            writer.close()
        handlers = list(self._handlers)
        if handlers:
            _, pending = await asyncio.wait(handlers, timeout=5.0)
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        try:
            writer.write(self.greeting)
            await writer.drain()
            first = True
            while data := await reader.read(64 * 1024):
                if first:
                    self.received.append(data)
                    first = False
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
