"""WebSocket through the mesh, as a client sees it: an echo east-west (caller sidecar →
HTTP/2 hop → callee sidecar → app) and through the gateway, and a socket that stays open
and idle longer than its route's timeout is not cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from protocol_mesh import SERVICE, mesh_resource, protocol_mesh, route
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from gossamer.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

APP = "127.0.0.3"
WHERE = ("east-west", "ingress")


@asynccontextmanager
async def echo_server() -> AsyncIterator[tuple[str, int]]:
    """A WebSocket app on APP that echoes every message, prefixed with ``echo:``."""

    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(f"echo:{message!s}")

    async with serve(echo, APP, 0) as server:
        yield server.sockets[0].getsockname()[:2]


async def reaches_app(url: str) -> bool:
    # The WebSocket app answers a plain GET 426 (Upgrade Required): the path is routed.
    async with httpx.AsyncClient(timeout=5, trust_env=False) as c:
        try:
            return (await c.get(url + "/")).status_code == 426
        except httpx.TransportError:
            return False


async def test_websocket_echo_east_west_and_through_the_gateway(tmp_path: Path) -> None:
    async with echo_server() as app, protocol_mesh(tmp_path, [app]) as mesh:
        for where in WHERE:
            await wait_until(
                lambda w=where: reaches_app(mesh.url(w)), timeout=30, what=f"{where} routing"
            )
            async with connect(mesh.url(where, "ws") + "/chat", open_timeout=10, proxy=None) as ws:
                for text in ("a", "b" * 70_000, "c"):
                    await ws.send(text)
                    async with asyncio.timeout(10):
                        assert await ws.recv() == f"echo:{text}", where
        upgrades = await mesh.callees[0].stats(r"^http\.inbound\|.*downstream_cx_upgrades_total$")
        assert sum(upgrades.values()) == 2, "both sockets reached the callee as upgrades"
        for envoy in (mesh.caller, mesh.gateway):
            h2 = await envoy.stats(r"^cluster\.outbound\|.*\.upstream_cx_http2_total$")
            assert sum(h2.values()) >= 1, "the hop to the callee's sidecar is HTTP/2"


@pytest.mark.parametrize("stream_idle", [None, "1s"], ids=["default-idle", "idle-1s"])
async def test_a_websocket_outlives_its_route_timeout(
    tmp_path: Path, stream_idle: str | None
) -> None:
    # A 1 s route timeout bounds requests, not an upgraded connection; an idle socket is cut
    # by the stream idle timeout (Mesh.defaults.streamIdleTimeout) only: with it at 1 s the
    # same wait closes both sockets, which shows this test sees a cut when there is one.
    rules = [{"destinations": [{"service": SERVICE}], "timeout": "1s"}]
    extra = [route(rules), route(rules, gateway=True)]
    if stream_idle is not None:
        extra.append(mesh_resource({"defaults": {"streamIdleTimeout": stream_idle}}))
    async with echo_server() as app, protocol_mesh(tmp_path, [app], extra=extra) as mesh:
        for where in WHERE:
            await wait_until(
                lambda w=where: reaches_app(mesh.url(w)), timeout=30, what=f"{where} routing"
            )
        sockets = [
            await connect(mesh.url(w, "ws") + "/long", open_timeout=10, proxy=None) for w in WHERE
        ]
        try:
            # Time passing is the point here: stay open and idle past the route timeout.
            await asyncio.sleep(2.5)
            for where, ws in zip(WHERE, sockets, strict=True):
                if stream_idle is None:
                    await ws.send("still-there")
                    async with asyncio.timeout(10):
                        assert await ws.recv() == "echo:still-there", where
                else:
                    with pytest.raises(ConnectionClosed):
                        await ws.send("still-there")
                        async with asyncio.timeout(10):
                            await ws.recv()
        finally:
            for ws in sockets:
                await ws.close()
