"""Calls to ExternalServices are in the topology, counted exactly, through real Envoys fed
by a control plane with its telemetry child, in both ``Mesh.spec.telemetry.requests``
modes: web-1's sidecar calls ``ledger`` directly (an edge web -> ledger, kind
``external``) and ``weather`` through the egress gateway ``egress`` (``spec.via``): the
sidecar reports its hop to the gateway (web -> egress, kind ``gateway``), the gateway its
hop to the external service (egress -> weather, kind ``external``), so each request into
an external node is counted once. 4xx and 5xx apart (404 and 500: statuses the default
retries leave alone, so each request is one attempt at every hop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.errors import PollTimeoutError
from gossamer.polling import wait_until
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing import HttpBackend
from gossamer.testing.controlplane import (
    api_client,
    apply_manifests,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

CALLER, GATEWAY_HOST = "127.0.0.71", "127.0.0.72"
WEATHER_HOST, LEDGER_HOST = "127.0.0.73", "127.0.0.74"
WEB = ProxyIdentity("sidecar", "default", "web-1", service="web")
GATEWAY = ProxyIdentity("gateway", "default", "egress")
#: path -> how many: what the app sends to each external service
TRAFFIC = {"/ok": 9, "/status/404": 3, "/status/500": 2}


def manifests(requests: str, weather_port: int, ledger_port: int, via_port: int) -> list[Manifest]:
    def doc(kind: str, name: str, spec: dict[str, Any]) -> Manifest:
        return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}

    deps = [{"service": "weather"}, {"service": "ledger"}]
    return [
        doc("Mesh", "default", {"telemetry": {"requests": requests}}),
        service("web"),
        doc("Gateway", "egress", {"address": GATEWAY_HOST, "port": free_port(GATEWAY_HOST)}),
        doc("ExternalService", "weather", {
            "addresses": [WEATHER_HOST], "port": weather_port, "protocol": "http",
            "via": {"gateway": "egress", "port": via_port},
        }),
        doc("ExternalService", "ledger", {
            "addresses": [LEDGER_HOST], "port": ledger_port, "protocol": "http",
        }),
        workload("web-1", "web", CALLER, free_port(CALLER), 1, dependencies=deps),
    ]  # fmt: skip


async def warm(envoy: EnvoyProcess, listeners: int, cluster: str) -> bool:
    """Every listener up and ``cluster`` with a healthy host, without sending a request
    (one would be counted)."""
    try:
        stats = await envoy.stats()
    except Exception:  # not up yet
        return False
    return (
        stats.get("cluster_manager.warming_clusters") == 0
        and stats.get("listener_manager.total_listeners_warming") == 0
        and stats.get("listener_manager.total_listeners_active", 0) >= listeners
        and stats.get(f"cluster.{cluster}.membership_healthy", 0) >= 1
    )


def figures(body: dict[str, Any]) -> dict[tuple[str, str], tuple[int, int, int, str]]:
    return {
        (e["source"], e["destination"]): (e["requests"], e["errors4xx"], e["errors5xx"], e["view"])
        for e in body["edges"]
    }


@pytest.mark.parametrize("requests", ["stats", "logs"])
async def test_calls_to_external_services_are_edges_to_external_nodes(
    tmp_path: Path, requests: str
) -> None:
    via_port = free_port(GATEWAY_HOST)
    async with (
        HttpBackend("weather", host=WEATHER_HOST) as weather,
        HttpBackend("ledger", host=LEDGER_HOST) as ledger,
        running_control_plane(tmp_path, telemetry=TelemetrySettings("auto")) as app,
    ):
        docs = manifests(requests, weather.address[1], ledger.address[1], via_port)
        await apply_manifests(app, docs, wait=False)
        assert app.plane.model is not None
        async with (
            mesh_envoy(app, WEB) as sidecar,
            mesh_envoy(app, GATEWAY) as gateway,
            httpx.AsyncClient(timeout=10, trust_env=False) as client,
            api_client(app) as api,
        ):

            async def answering() -> bool:  # (503 while the telemetry child starts)
                return (await api.get("/v1/topology", params={"since": "5m"})).status_code == 200

            await wait_until(answering, timeout=60, what="the telemetry service")
            await wait_until(
                lambda: warm(sidecar, 3, "outbound|default/weather|http"),
                timeout=60,
                what="web-1's sidecar serving both external services",
            )
            await wait_until(
                lambda: warm(gateway, 2, "egress|default/weather|http"),
                timeout=60,
                what="the egress gateway's listener for weather",
            )
            local = app.plane.model.local_addresses
            urls = {
                "weather": f"http://{local[('default', 'weather')]}:{weather.address[1]}",
                "ledger": f"http://{local[('default', 'ledger')]}:{ledger.address[1]}",
            }
            for base in urls.values():
                for path, n in TRAFFIC.items():
                    for _ in range(n):
                        r = await client.get(base + path)
                        assert r.status_code == (200 if path == "/ok" else int(path[-3:]))
            assert weather.requests_by_path["/ok"] == ledger.requests_by_path["/ok"] == 9
            total = sum(TRAFFIC.values())
            each = (total, 3, 2, "client")
            expected = {
                ("default/web", "default/egress"): each,  # the sidecar's hop, to the gateway
                ("default/egress", "default/weather"): each,  # the gateway's, out
                ("default/web", "default/ledger"): each,  # straight from the sidecar
            }

            last: list[dict[str, Any]] = []

            async def counted() -> dict[str, Any] | None:
                r = await api.get("/v1/topology", params={"since": "5m"})
                assert r.status_code == 200, r.text
                body: dict[str, Any] = r.json()
                last[:] = [body]
                got = {k: v[0] for k, v in figures(body).items()}
                return body if got == {k: total for k in expected} else None

            # (stats: each Envoy exports every 10 s; logs: entries within about a second)
            try:
                body: dict[str, Any] = await wait_until(  # type: ignore[assignment]
                    counted, timeout=60, interval=0.5, what="every request"
                )
            except PollTimeoutError:
                ingestion = (await api.get("/v1/ingestion", params={"since": "5m"})).json()
                raise AssertionError(f"topology {last}, ingestion {ingestion}") from None
            assert figures(body) == expected, body
            nodes = {n["id"]: (n["kind"], n["requests"]) for n in body["nodes"]}
            assert nodes == {
                "default/web": ("service", 0),
                "default/egress": ("gateway", total),
                "default/weather": ("external", total),  # once, not once per hop
                "default/ledger": ("external", total),
            }, nodes
            for edge in body["edges"]:
                assert edge["mtls"] == 0.0  # (no SDS for these Envoys: plaintext hops)
                assert edge["latencyMs"]["p50"] is not None
            ingestion = (await api.get("/v1/ingestion", params={"since": "5m"})).json()
            if requests == "stats":  # counted from Envoy's stats, no entry sent
                assert ingestion["entries"] == 0, ingestion
                by_node = ingestion["requestStats"]["requestsByNode"]
                assert by_node == {
                    "sidecar~default~web-1": 2 * total,
                    "gateway~default~egress": total,
                }
            else:
                assert ingestion["requests"] == 3 * total, ingestion
