"""An unhealthy instance gets no traffic, even when it is the only one (no panic mode)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing import (
    HttpBackend,
    apply_manifests,
    free_port,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CLIENT = "127.0.0.2"


async def test_the_only_instance_unhealthy_gets_nothing(tmp_path: Path) -> None:
    local = free_port(CLIENT)
    inbound = free_port("127.0.0.3")
    async with (
        HttpBackend("reviews-1", host="127.0.0.3") as backend,
        running_control_plane(tmp_path) as app,
    ):

        def reviews(health: str) -> dict[str, object]:
            return workload(
                "reviews-1", "reviews", "127.0.0.3", inbound, backend.address[1], health=health
            )

        await apply_manifests(
            app,
            [
                service("web"),
                service("reviews", 9080),
                reviews("healthy"),
                workload(
                    "web-1",
                    "web",
                    CLIENT,
                    free_port(CLIENT),
                    1,
                    dependencies=[
                        {"service": "reviews", "localAddress": CLIENT, "localPort": local}
                    ],
                ),
            ],
            wait=False,
        )
        proxies = [ProxyIdentity("sidecar", "default", n) for n in ("web-1", "reviews-1")]
        async with (
            mesh_envoy(app, proxies[0]),
            mesh_envoy(app, proxies[1]),
            httpx.AsyncClient(timeout=5) as client,
        ):

            async def status() -> int:
                try:
                    return (await client.get(f"http://{CLIENT}:{local}/")).status_code
                except httpx.TransportError:
                    return 0

            async def ok() -> bool:
                return await status() == 200

            await wait_until(ok, timeout=30, what="traffic to reviews")
            await apply_manifests(app, [reviews("unhealthy")])
            served = backend.requests
            assert await status() == 503
            assert backend.requests == served  # the unhealthy app was not asked
            await apply_manifests(app, [reviews("healthy")])
            await wait_until(ok, timeout=30, what="traffic again")
