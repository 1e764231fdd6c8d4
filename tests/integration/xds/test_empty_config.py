"""A proxy whose translation is known but empty of some type (a Gateway with no Routes yet
has a listener and no clusters) gets an answer for that type at once: Envoy otherwise waits
out its initial fetch (15 s) before it is ready. A proxy nobody registered still gets
nothing (fail static, see test_fresh_store_xds.py)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.testing.controlplane import apply_manifests, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import API_VERSION, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

EDGE = ProxyIdentity("gateway", "default", "edge")
#: Envoy's initial fetch timeout is 15 s; an answered proxy is ready in well under a second
READY_WITHIN = 5.0


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_gateway_with_no_routes_is_ready_at_once(tmp_path: Path, delta: bool) -> None:
    port = free_port()
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_manifests(
            app,
            [
                {
                    "apiVersion": API_VERSION,
                    "kind": "Gateway",
                    "metadata": {"name": "edge"},
                    "spec": {"address": "127.0.0.1", "port": port},
                }
            ],
            wait=False,
        )
        admin = ("127.0.0.1", free_port())
        bootstrap = ads_bootstrap(EDGE, app.xds_addr, admin, delta=delta)
        started = time.monotonic()
        async with (
            EnvoyProcess(bootstrap, wait_ready=False, name="edge"),
            httpx.AsyncClient(timeout=2, trust_env=False) as client,
        ):

            async def ready() -> bool:
                try:
                    ready = await client.get(f"http://127.0.0.1:{admin[1]}/ready")
                    return ready.status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout=READY_WITHIN, what="the gateway's Envoy to be LIVE")
            took = time.monotonic() - started
            # its listener serves (no route yet: Envoy's own 404), the clusters are empty
            response = await client.get(f"http://127.0.0.1:{port}/")
            assert response.status_code == 404
            dump = (await client.get(f"http://127.0.0.1:{admin[1]}/config_dump")).json()
            assert not any("dynamic_active_clusters" in c for c in dump["configs"])
        assert took < READY_WITHIN
