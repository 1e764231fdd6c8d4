"""The admin client's failures say which Envoy, which call and what to check; its
predicates say False instead of raising (for polling)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.errors import EnvoyError
from gossamer.testing.ports import free_port

pytestmark = pytest.mark.asyncio


@asynccontextmanager
async def answering(status: str, body: bytes) -> AsyncIterator[str]:
    """An HTTP server on loopback that answers every request with ``status`` and ``body``
    (something at the admin address that is not a healthy Envoy)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(
            f"HTTP/1.1 {status}\r\ncontent-length: {len(body)}\r\n".encode()
            + b"connection: close\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


async def test_nobody_there() -> None:
    address = f"127.0.0.1:{free_port()}"
    async with EnvoyAdmin(address, name="proxy sidecar~default~web-1") as admin:
        assert not await admin.ready()
        assert not await admin.answers()
        with pytest.raises(EnvoyError) as info:
            await admin.config_dump(include_eds=True)
    assert str(info.value).startswith(
        f"proxy sidecar~default~web-1: admin GET /config_dump at {address} failed ("
    )
    assert str(info.value).endswith(
        "check that this Envoy still runs and its admin API listens there"
    )


async def test_a_diagnosis_replaces_the_hint() -> None:
    address = f"127.0.0.1:{free_port()}"
    async with EnvoyAdmin(address, diagnose=lambda: "envoy exited with status 1") as admin:
        with pytest.raises(EnvoyError, match=r"failed \(.*\); envoy exited with status 1$"):
            await admin.stats()


async def test_an_error_status_is_quoted() -> None:
    async with (
        answering("503 Service Unavailable", b"PRE_INITIALIZING\n") as address,
        EnvoyAdmin(address) as admin,
    ):
        assert not await admin.ready()
        with pytest.raises(
            EnvoyError,
            match=r"admin POST /drain_listeners at .* answered "
            r"503: PRE_INITIALIZING$",
        ):
            await admin.drain_listeners(inbound_only=True)


async def test_not_an_admin_api() -> None:
    async with (
        answering("200 OK", b"<html>hello</html>") as address,
        EnvoyAdmin(address) as admin,
    ):
        with pytest.raises(
            EnvoyError,
            match=r"did not answer JSON .*is that address an "
            r"Envoy admin API",
        ):
            await admin.server_info()
