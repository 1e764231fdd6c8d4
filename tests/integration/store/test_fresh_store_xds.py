"""A control plane started on a store that does not know the running proxies (a mistyped
``--data-dir``, a store replaced on purpose) must not empty them: Envoys it never configured
keep their last configuration, over SotW and delta xDS alike (issue 7, R1)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp, create_app
from gossamer.server.settings import Settings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CLIENT, SERVER = "127.0.0.2", "127.0.0.3"
WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1")
#: requests after both Envoys reconnected: a removal arrives within milliseconds of that
AFTER = 200


@contextlib.asynccontextmanager
async def _control_plane(data: Path, api: int, xds: int) -> AsyncIterator[ControlPlaneApp]:
    settings = Settings(
        data,
        api_addr=("127.0.0.1", api),
        xds_addr=("127.0.0.1", xds),
        xds_tls="optional",  # mesh_envoy: Envoys without a certificate, on plaintext xDS
    )
    async with create_app(settings) as app:
        yield app


async def _ok(client: httpx.AsyncClient, url: str) -> bool:
    try:
        r = await client.get(url)
    except httpx.TransportError:
        return False
    return r.status_code == 200 and json.loads(r.text)["backend"] == "reviews-1"


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_envoys_keep_their_config_from_a_control_plane_that_never_knew_them(
    tmp_path: Path, delta: bool
) -> None:
    api, xds, local = free_port(), free_port(), free_port(CLIENT)
    url = f"http://{CLIENT}:{local}/hello"
    async with (
        HttpBackend("reviews-1", host=SERVER) as backend,
        httpx.AsyncClient(timeout=5, trust_env=False) as client,
        contextlib.AsyncExitStack() as envoys,
    ):
        async with _control_plane(tmp_path / "cp", api, xds) as first:
            await apply_manifests(
                first,
                [
                    service("web"),
                    service("reviews", 9080),
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
                    workload(
                        "reviews-1",
                        "reviews",
                        SERVER,
                        free_port(SERVER),
                        backend.address[1],
                        app_address=SERVER,
                    ),
                ],
                wait=False,
            )
            for proxy in (WEB, REVIEWS):
                await envoys.enter_async_context(mesh_envoy(first, proxy, delta=delta))
            await wait_until(lambda: _ok(client, url), timeout=30, what="traffic through both")
        # the same addresses, another (empty) data dir: it knows neither proxy
        async with _control_plane(tmp_path / "typo", api, xds) as second:
            await wait_until(
                lambda: (
                    {p.node_id for p in second.xds.cache.connected()}
                    >= {WEB.node_id, REVIEWS.node_id}
                ),
                timeout=60,
                what="both Envoys connected to the new control plane",
            )
            failed = [i for i in range(AFTER) if not await _ok(client, url)]
            assert failed == [], f"{len(failed)} of {AFTER} requests failed"
