"""The API's HTTP server: receipt deadlines, the connection cap, coalesced logs (issue 7, R4).

Real sockets on loopback against ``ApiServer`` serving a small ASGI app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gossamer.errors import ConfigError
from gossamer.polling import wait_until
from gossamer.server.connection_guard import ApiServerLimits
from gossamer.server.http_server import ApiServer, RepeatFilter

FAST = ApiServerLimits(header_timeout=0.5, body_timeout=0.5, max_connections=100)


class EchoApp:
    """Answers 200 with the request body; ``/block`` waits until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.blocked = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["path"] == "/block":
            self.blocked += 1
            await self.release.wait()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving(
    limits: ApiServerLimits, app: EchoApp | None = None, *, fd_limit: int = 100_000
) -> AsyncIterator[tuple[tuple[str, int], ApiServer]]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    server = ApiServer(app or EchoApp(), sock, limits, fd_limit=fd_limit)
    address = sock.getsockname()[:2]
    async with asyncio.TaskGroup() as tg:
        tg.create_task(server.serve())
        try:
            yield address, server
        finally:
            server.stop()


async def read_all(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, float]:  # noqa: ASYNC109
    """Everything until the server closes (bounded); and how long that took."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(), timeout)
    return data, time.monotonic() - start


async def request(address: tuple[str, int], path: str = "/", body: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection(*address)
    head = f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\nConnection: close"
    writer.write(head.encode() + b"\r\n\r\n" + body)
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


@pytest.mark.asyncio
async def test_partial_headers_get_408_and_are_closed_by_the_deadline() -> None:
    async with serving(FAST) as (address, _):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")
        # keep dribbling header bytes: each one would reset uvicorn's own keep-alive timer
        for _ in range(3):
            await asyncio.sleep(0.1)
            writer.write(b"X")
        data, took = await read_all(reader, 5)
        writer.close()
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"headers did not arrive within 0.5 s" in data
    assert took < 1.5


@pytest.mark.asyncio
async def test_a_silent_connection_is_closed_without_an_answer() -> None:
    async with serving(FAST) as (address, _):
        reader, writer = await asyncio.open_connection(*address)
        data, took = await read_all(reader, 5)
        writer.close()
    assert data == b""
    assert took < 1.5


@pytest.mark.asyncio
async def test_a_kept_alive_connection_gets_a_fresh_deadline_per_request() -> None:
    async with serving(FAST) as (address, _):
        reader, writer = await asyncio.open_connection(*address)
        for n in range(3):  # 3 x 0.3 s > one deadline: each response restarts it
            await asyncio.sleep(0.3)
            writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n%d" % n)
            reply = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert reply.startswith(b"HTTP/1.1 200 ")
            assert await asyncio.wait_for(reader.readexactly(1), 5) == str(n).encode()
        data, took = await read_all(reader, 5)  # idle after the last response: closed
        writer.close()
    assert data == b""
    assert took < 1.5


@pytest.mark.asyncio
async def test_a_slow_body_gets_408() -> None:
    async with serving(FAST) as (address, _):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        data, took = await read_all(reader, 5)
        writer.close()
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert b"body did not arrive within 0.5 s" in data
    assert took < 1.5


@pytest.mark.asyncio
async def test_a_slow_handler_is_not_cut_off() -> None:
    """The deadlines cover receiving a request, not the time the app takes to answer."""
    app = EchoApp()
    async with serving(FAST, app) as (address, _):
        answer = asyncio.create_task(request(address, "/block", b"late"))
        await wait_until(lambda: app.blocked == 1, what="the request to reach the app")
        await asyncio.sleep(1.0)  # twice the deadlines
        app.release.set()
        reply = await answer
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"late")


@pytest.mark.asyncio
async def test_at_the_cap_the_longest_waiting_connection_makes_room() -> None:
    limits = ApiServerLimits(header_timeout=30, body_timeout=30, max_connections=3)
    async with serving(limits) as (address, server):
        idle = [await asyncio.open_connection(*address) for _ in range(3)]
        await wait_until(lambda: len(server.slots) == 3, what="3 open connections")
        # a 4th client is served; the first idle connection was closed for it
        reply = await request(address, "/", b"hi")
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"hi")
        assert await asyncio.wait_for(idle[0][0].read(), 5) == b""
        for _, writer in idle:
            writer.close()


@pytest.mark.asyncio
async def test_at_the_cap_with_every_connection_busy_new_clients_wait() -> None:
    app = EchoApp()
    limits = ApiServerLimits(header_timeout=30, body_timeout=30, max_connections=2)
    async with serving(limits, app) as (address, _):
        busy = [asyncio.create_task(request(address, "/block", b"b")) for _ in range(2)]
        await wait_until(lambda: app.blocked == 2, what="two blocked requests")
        waiting = asyncio.create_task(request(address, "/", b"w"))
        await asyncio.sleep(0.3)
        assert not waiting.done(), "a client beyond the cap was answered or refused"
        app.release.set()
        assert (await waiting).endswith(b"w")
        for b in busy:
            assert (await b).endswith(b"b")


def test_the_cap_stays_within_half_the_fd_limit() -> None:
    assert ApiServerLimits(max_connections=1024).connection_cap(512) == 256
    assert ApiServerLimits(max_connections=1024).connection_cap(100_000) == 1024


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"header_timeout": 0}, "--api-header-timeout"),
        ({"body_timeout": -1}, "--api-body-timeout"),
        ({"max_connections": 0}, "--api-max-connections"),
    ],
)
def test_bad_limits_name_their_flag(kwargs: dict[str, Any], flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        ApiServerLimits(**kwargs)


def test_repeated_messages_are_coalesced(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.repeats")
    repeats = RepeatFilter(interval=0.2)
    logger.addFilter(repeats)
    try:
        with caplog.at_level(logging.WARNING, logger="test.repeats"):
            for n in range(1000):
                logger.warning("cannot accept: %s", n)
            logger.warning("another message")
            time.sleep(0.25)
            logger.warning("cannot accept: %s", "again")
    finally:
        logger.removeFilter(repeats)
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "cannot accept: 0",
        "another message",
        "cannot accept: again [999 more like this in the last 0.2 s]",
    ]
