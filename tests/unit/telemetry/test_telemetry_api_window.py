"""``/v1/topology?since=`` divides by the time its minute buckets cover, not by the window
asked: buckets start at the first minute's start, so a 1m window read 30 s into a minute
covers 90 s (it read as 1.5x the rate before)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from envoy.config.core.v3 import base_pb2

from gossamer.node import fill_node
from gossamer.telemetry.api import api_app
from gossamer.telemetry.entries import Reporter
from gossamer.telemetry.serve import TelemetryService
from gossamer.telemetry.store import TelemetryStore
from gossamer.testing.telemetry import batch, http_entry
from gossamer.translate.names import outbound_cluster
from gossamer.types import ProxyIdentity

pytestmark = pytest.mark.asyncio

MINUTE = 30_000_000  # an epoch minute
NOW = MINUTE * 60 + 30  # 30 s into it


def reporter() -> Reporter:
    node = base_pb2.Node()
    fill_node(node, ProxyIdentity("sidecar", "default", "web-1", service="web"))
    return Reporter.of(node, "outbound")


async def test_rps_is_requests_over_the_seconds_the_buckets_cover(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path / "t.sqlite", 3600, 1 << 30)
    await store.open()
    try:
        service = TelemetryService(store, clock=lambda: NOW)
        cluster = outbound_cluster(("default", "api"), "http")
        # 45 requests in the previous minute's second half, 45 in this minute's first half
        entries = [
            http_entry(cluster=cluster, start_s=MINUTE * 60 - 20 + i % 40) for i in range(45)
        ]
        entries += [http_entry(cluster=cluster, start_s=MINUTE * 60 + i % 30) for i in range(45)]
        service.servicer.ingest(reporter(), batch(entries))
        transport = httpx.ASGITransport(app=api_app(service, None))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answer = (await client.get("/v1/topology", params={"since": "1m"})).json()
        [edge] = answer["edges"]
        assert edge["requests"] == 90
        # the buckets cover the previous minute's start .. now: 90 s, so 1.0/s, not 90/60
        assert answer["windowSeconds"] == 60
        assert edge["rps"] == 1.0
        assert answer["coveredSeconds"] == 90
        node = {n["id"]: n for n in answer["nodes"]}["default/api"]
        assert node["rps"] == 1.0
    finally:
        await store.close()
