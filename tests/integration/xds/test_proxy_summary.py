"""The operator's view of the proxies at scale, through a real control plane (SQLite store,
API and xDS on loopback) and a fake Envoy over gRPC (``AdsClient``): per-type push latency
after a change, and a NACKing proxy out of sync and NACKing on ``/metrics``, in
``GET /v1/proxies/summary`` and in ``gossamer proxy-status --summary`` (JSON and table),
then in sync again once it accepts the config."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.ads_client import connect
from gossamer.testing.controlplane import (
    TOKEN_ENV,
    api_client,
    apply_manifests,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import ResourceType

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GOSSAMER = str(Path(sys.executable).with_name("gossamer"))
WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[ControlPlaneApp]:
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_manifests(
            app,
            [
                service("web"),
                service("api"),
                workload(
                    "web-1", "web", "127.0.0.2", 15006, 8080, dependencies=[{"service": "api"}]
                ),
                workload("api-1", "api", "127.0.0.3", 15007, 8081),
            ],
            wait=False,
        )
        yield app


async def metrics(api: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` as (sample name, labels) -> value."""
    response = await api.get("/metrics")
    assert response.status_code == 200, response.text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


async def summary(api: httpx.AsyncClient) -> dict[str, Any]:
    response = await api.get("/v1/proxies/summary")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def counts(s: dict[str, Any]) -> tuple[int, int, int, int]:
    return s["connected"], s["inSync"], s["outOfSync"], s["nacking"]


def pushes_measured(m: dict[Any, float], type_: str) -> float:
    return m.get(("gossamer_xds_push_latency_seconds_count", (("type", type_),)), 0.0)


async def cli(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "GOSSAMER_TOKEN": os.environ[TOKEN_ENV]},
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode()
    return out.decode()


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_nacking_proxy_is_out_of_sync_and_nacking_then_in_sync_after_it_accepts(
    app: ControlPlaneApp, delta: bool
) -> None:
    server = ("--server", app.api_url)
    async with api_client(app) as api, connect(WEB_1, app.xds_addr, delta=delta) as web:
        await wait_until(lambda: shows(api, (1, 1, 0, 0)), timeout=15, what="web-1 in sync")
        before = await metrics(api)
        for t in ("clusters", "endpoints", "listeners", "routes"):
            assert pushes_measured(before, t) >= 1, t  # its first config, per type

        # a change of api's endpoints: measured as an endpoints push
        await apply_manifests(app, [workload("api-2", "api", "127.0.0.4", 15007, 8081)], wait=False)
        await wait_until(
            lambda: measured_more(api, "endpoints", pushes_measured(before, "endpoints")),
            timeout=15,
            what="an endpoints push measured after the change",
        )

        # the proxy rejects the next endpoints: out of sync and NACKing everywhere
        rejection = web.reject(ResourceType.ENDPOINT)
        await apply_manifests(app, [workload("api-3", "api", "127.0.0.5", 15007, 8081)], wait=False)
        await wait_until(lambda: shows(api, (1, 0, 1, 1)), timeout=15, what="web-1 NACKing")
        m = await metrics(api)
        assert m[("gossamer_xds_proxies_out_of_sync", ())] == 1
        assert m[("gossamer_xds_proxies_nacking", ())] == 1
        assert m[("gossamer_xds_connected_proxies", ())] == 1
        shown = json.loads(await cli("proxy-status", "--summary", "-o", "json", *server))
        assert counts(shown) == (1, 0, 1, 1)
        table = await cli("proxy-status", "--summary", *server)
        assert "1 connected, 0 in sync, 1 out of sync, 1 NACKing" in table, table
        rows = {line.split()[0]: line.split() for line in table.splitlines() if line.strip()}
        # endpoints, its changes, p50 and p99 in ms: "endpoints 2 5.0 ms 99.0 ms"
        assert rows["endpoints"][1] != "0" and rows["endpoints"][3] == "ms", table

        # it accepts the config again (the control plane's back-off retry): in sync
        web.lift(rejection)
        await wait_until(lambda: shows(api, (1, 1, 0, 0)), timeout=30, what="web-1 in sync again")
        m = await metrics(api)
        assert m[("gossamer_xds_proxies_out_of_sync", ())] == 0
        assert m[("gossamer_xds_proxies_nacking", ())] == 0
        assert m[("gossamer_xds_queue_depth", ())] == 0
        shown = json.loads(await cli("proxy-status", "--summary", "-o", "json", *server))
        assert counts(shown) == (1, 1, 0, 0) and shown["queueDepth"] == 0
        latency = {row["type"]: row for row in shown["latency"]}
        assert latency["endpoints"]["count"] >= 3 and latency["endpoints"]["p99Seconds"] > 0
        assert latency["all"]["count"] >= 3


async def shows(api: httpx.AsyncClient, want: tuple[int, int, int, int]) -> bool:
    """The summary counts (connected, in sync, out of sync, NACKing) are ``want``."""
    return counts(await summary(api)) == want


async def measured_more(api: httpx.AsyncClient, type_: str, than: float) -> bool:
    return pushes_measured(await metrics(api), type_) > than
