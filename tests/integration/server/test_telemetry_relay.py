"""A proxy's stat sink reaches the telemetry service through the control plane: an Envoy
started from ``ads_bootstrap`` (which knows only the xDS address) pushes its access-log
counters to ``gossamer-xds``; the control plane relays them to its telemetry child, whose
``/v1/ingestion`` (forwarded by the control plane's API) reconciles that node with no gap.
With telemetry ``off`` the exports are answered and dropped."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing import apply_manifests
from gossamer.testing.controlplane import api_client, running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(180)]

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")


async def envoy(app: ControlPlaneApp, tmp_path: Path) -> EnvoyProcess:
    """web-1's Envoy, once its Workload is known (a control plane configures no proxy it
    does not know, and Envoy would wait out each initial fetch before it is ready)."""
    sidecar, app_port = free_port("127.0.0.2"), free_port("127.0.0.2")
    manifests = [service("web"), workload("web-1", "web", "127.0.0.2", sidecar, app_port)]
    await apply_manifests(app, manifests)
    admin = ("127.0.0.1", free_port())
    bootstrap = ads_bootstrap(
        WEB_1,
        app.xds_addr,
        admin,
        stats_flush=timedelta(seconds=1),
        metadata={"admin": f"{admin[0]}:{admin[1]}"},
    )
    return EnvoyProcess(bootstrap, workdir=tmp_path / "envoy", name=WEB_1.node_id)


async def test_the_control_plane_relays_each_proxys_counters_to_its_child(tmp_path: Path) -> None:
    settings = TelemetrySettings("auto")
    async with (
        running_control_plane(tmp_path, telemetry=settings) as app,
        api_client(app) as api,
        await envoy(app, tmp_path),
    ):

        async def reconciled() -> dict[str, Any] | None:
            r = await api.get("/v1/ingestion", params={"since": "5m"})
            if r.status_code != 200:
                return None
            nodes: dict[str, Any] = r.json()["reconciliation"]["nodes"]
            return r.json() if WEB_1.node_id in nodes else None

        found: dict[str, Any] = await wait_until(  # type: ignore[assignment]
            reconciled, timeout=60, interval=0.5, what="the node's counters compared"
        )
    node = found["reconciliation"]["nodes"][WEB_1.node_id]
    assert node["service"] == "default/web"
    assert (node["written"], node["outstanding"], found["gap"]) == (0, 0, False)


async def test_with_telemetry_off_exports_are_dropped(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path) as app, await envoy(app, tmp_path):
        relay = app.telemetry_relay
        assert relay is not None
        await wait_until(lambda: relay.dropped >= 1, timeout=30, what="an export dropped")
        assert relay.forwarded == 0
