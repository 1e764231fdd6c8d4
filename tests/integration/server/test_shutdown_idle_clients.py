"""A control plane stops promptly while HTTPS clients keep idle connections open and do
not read: asyncio waited 30 s (its default TLS shutdown timeout) for each such client's
close_notify, so every stop with a connected agent took half a minute."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from gossamer.server.http_server import TLS_SHUTDOWN_S
from gossamer.testing.controlplane import api_client, running_control_plane

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


async def test_idle_https_clients_do_not_hold_the_shutdown(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as clients:
        async with contextlib.AsyncExitStack() as plane:
            app = await plane.enter_async_context(running_control_plane(tmp_path / "cp"))
            assert app.api_url.startswith("https://")
            for _ in range(3):  # each keeps its connection, idle, and never reads again
                client = await clients.enter_async_context(api_client(app))
                assert (await client.get("/v1/version")).status_code == 200
            began = loop.time()
        took = loop.time() - began
    assert took < TLS_SHUTDOWN_S + 10, f"the shutdown took {took:.1f} s"
