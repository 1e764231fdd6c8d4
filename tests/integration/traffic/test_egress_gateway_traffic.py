"""Egress through an egress gateway (issue 10), real Envoys on loopback: web-1's sidecar
(127.0.0.2) sends its requests for an ExternalService with ``via: {gateway: egress}`` to the
Gateway's Envoy (127.0.0.5), which alone connects to the external server: the gateway's
cluster counts every attempt, the sidecar's cluster has the gateway as its only host, and
the caller's Route rule (retries) still acts at the sidecar. ``https`` is originated at the
gateway against the given CA (a wrong CA fails there); an ExternalService without ``via`` is
still reached directly and has no listener at the gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from egress_mesh import CLIENT, WEB, ScratchCa, TlsServer, external

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import HttpBackend, apply_manifests, free_port, mesh_envoy
from gossamer.testing.controlplane import running_control_plane
from gossamer.testing.mesh import route, service, workload
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

GATEWAY_ADDRESS = "127.0.0.5"
GATEWAY = ProxyIdentity("gateway", "default", "egress")


def via(port: int) -> dict[str, Any]:
    """``spec.via`` to the egress gateway, listening for the service on ``port``."""
    return {"gateway": "egress", "port": port}


@dataclass
class EgressGateway:
    app: ControlPlaneApp
    sidecar: EnvoyProcess
    gateway: EnvoyProcess
    client: httpx.AsyncClient

    def url(self, name: str, port: int, path: str) -> str:
        assert self.app.plane.model is not None
        return f"http://{self.app.plane.model.local_addresses[('default', name)]}:{port}{path}"

    async def counter(self, envoy: EnvoyProcess, name: str) -> int:
        return (await envoy.stats(f"^{name.replace('|', '[|]')}$")).get(name, 0)

    async def served(self, url: str) -> None:
        async def ok() -> bool:
            try:
                return (await self.client.get(url)).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ok, timeout=30, what=f"{url} answering through the egress gateway")

    async def hosts_of(self, envoy: EnvoyProcess, cluster: str) -> set[str]:
        """``address:port`` of every host of ``cluster`` as Envoy has it (admin /clusters)."""
        dump = json.loads(await envoy.admin_get("/clusters", {"format": "json"}))
        out: set[str] = set()
        for status in dump.get("cluster_statuses", []):
            if status["name"] == cluster:
                for host in status.get("host_statuses", []):
                    addr = host["address"]["socket_address"]
                    out.add(f"{addr['address']}:{addr['port_value']}")
        return out


@asynccontextmanager
async def egress_gateway(
    tmp_path: Path, externals: list[Manifest], more: list[Manifest] | None = None
) -> AsyncIterator[EgressGateway]:
    """A control plane, web-1's sidecar depending on every one of ``externals``, and the
    Gateway ``egress``'s Envoy."""
    deps = [{"service": e["metadata"]["name"]} for e in externals]
    gateway: Manifest = {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": "egress"},
        "spec": {"address": GATEWAY_ADDRESS, "port": free_port(GATEWAY_ADDRESS)},
    }
    async with running_control_plane(tmp_path) as app:
        manifests = [
            service("web"),
            gateway,
            *externals,
            *(more or []),
            workload("web-1", "web", CLIENT, free_port(CLIENT), 1, dependencies=deps),
        ]
        await apply_manifests(app, manifests, wait=False)
        async with (
            mesh_envoy(app, WEB) as sidecar,
            mesh_envoy(app, GATEWAY) as gw,
            httpx.AsyncClient(timeout=20, trust_env=False) as client,
        ):
            yield EgressGateway(app, sidecar, gw, client)


async def test_http_through_the_egress_gateway_and_direct_without_via(tmp_path: Path) -> None:
    async with (
        HttpBackend("weather-api", "127.0.0.1") as weather,
        HttpBackend("direct-api", "127.0.0.3") as direct,
    ):
        port = weather.address[1]
        gw_port = free_port(GATEWAY_ADDRESS)
        rule = {
            "matches": [{"path": {"prefix": "/status"}}],
            "retries": {"attempts": 2, "retryOn": ["5xx"]},
            "destinations": [{"service": "weather"}],
        }
        externals = [
            external("weather", hosts=["localhost"], port=port, protocol="http", via=via(gw_port)),
            external("ledger", addresses=["127.0.0.3"], port=direct.address[1], protocol="http"),
        ]
        async with egress_gateway(tmp_path, externals, [route("weather", "weather", [rule])]) as e:
            url = e.url("weather", port, "/hello")
            await e.served(url)
            r = await e.client.get(url)
            assert r.json()["backend"] == "weather-api"
            headers = r.json()["headers"]
            assert headers["host"] == "localhost"  # as without via, not the gateway's address
            leaked = [
                h for h in headers if h.startswith(("x-envoy", "x-gossamer", "x-forwarded-c"))
            ]
            assert leaked == []

            # the sidecar's cluster leads only to the gateway; the gateway's reaches out
            cluster = "outbound|default/weather|http"
            assert await e.hosts_of(e.sidecar, cluster) == {f"{GATEWAY_ADDRESS}:{gw_port}"}
            assert await e.hosts_of(e.gateway, "egress|default/weather|http") == {
                f"127.0.0.1:{port}"
            }
            gw_total = "cluster.egress|default/weather|http.upstream_rq_total"
            before = await e.counter(e.gateway, gw_total)
            sent = 5
            for _ in range(sent):
                assert (await e.client.get(url)).status_code == 200
            assert await e.counter(e.gateway, gw_total) - before == sent

            # the rule's retries at the sidecar: three attempts, each once through the gateway
            before_gw = await e.counter(e.gateway, gw_total)
            before = weather.requests_by_path["/status/503"]
            assert (await e.client.get(e.url("weather", port, "/status/503"))).status_code == 503
            assert weather.requests_by_path["/status/503"] - before == 3
            assert await e.counter(e.gateway, gw_total) - before_gw == 3
            retried = "cluster.outbound|default/weather|http.upstream_rq_retry"
            assert await e.counter(e.sidecar, retried) == 2

            # without via: straight from the sidecar, nothing for it at the gateway
            ledger = e.url("ledger", direct.address[1], "/x")
            await e.served(ledger)
            assert (await e.client.get(ledger)).json()["backend"] == "direct-api"
            assert await e.hosts_of(e.sidecar, "outbound|default/ledger|http") == {
                f"127.0.0.3:{direct.address[1]}"
            }
            listeners = await e.gateway.listener_addresses()
            assert "egress|default/weather" in listeners
            assert not [n for n in listeners if "ledger" in n]


async def test_https_originated_at_the_egress_gateway(tmp_path: Path) -> None:
    ca = ScratchCa("egress gateway ca", tmp_path)
    other = ScratchCa("not the server's ca", tmp_path)
    async with TlsServer("secure", ca.server_context("localhost")) as server:
        port = server.address[1]
        pay_port, wrong_port = free_port(GATEWAY_ADDRESS), free_port(GATEWAY_ADDRESS)
        externals = [
            external(
                "pay",
                hosts=["localhost"],
                port=port,
                protocol="https",
                tls={"ca": ca.pem},
                via=via(pay_port),
            ),
            external(
                "wrong-ca",
                hosts=["localhost"],
                port=port,
                protocol="https",
                tls={"ca": other.pem},
                via=via(wrong_port),
            ),
        ]
        async with egress_gateway(tmp_path, externals) as e:
            url = e.url("pay", port, "/charge")
            await e.served(url)
            r = await e.client.get(url)
            # the app spoke plain HTTP to its sidecar; the server got TLS from the gateway
            assert r.text == "secure GET /charge HTTP/1.1"
            assert r.headers["x-seen-host"] == "localhost"
            assert r.headers["x-envoy-headers"] == ""
            assert server.sni and set(server.sni) == {"localhost"}
            gw = "cluster.egress|default/pay|https"
            assert await e.counter(e.gateway, f"{gw}.ssl.handshake") > 0
            assert await e.counter(e.gateway, f"{gw}.upstream_rq_total") >= 2
            # the sidecar spoke to the gateway, never TLS to the server
            assert (
                await e.counter(e.sidecar, "cluster.outbound|default/pay|https.ssl.handshake") == 0
            )

            answered = len(server.hosts)
            r = await e.client.get(e.url("wrong-ca", port, "/charge"))
            assert r.status_code == 503, r.text
            failed = "cluster.egress|default/wrong-ca|https.ssl.fail_verify_error"
            assert await e.counter(e.gateway, failed) > 0  # verified at the gateway
            assert len(server.hosts) == answered
