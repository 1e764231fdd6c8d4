"""``gossamer gateway`` (the runner, in-process) routes by host and path into services with
and without sidecars, sets its own request id and logs every request to stdout."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from tests.integration.gateway.gateways import running_gateway, wait_served

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, mesh_envoy, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow]


def mesh(shop: tuple[str, int], api: tuple[str, int], sidecar_port: int, gw_port: int) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: shop}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: shop-1}}
spec:
  service: shop
  address: {shop[0]}
  sidecar: false
  ports: [{{port: {shop[1]}}}]
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: api}}
spec: {{ports: [{{name: http, port: 9090}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: api-1}}
spec:
  service: api
  address: {api[0]}
  appAddress: {api[0]}
  ports: [{{port: {sidecar_port}, appPort: {api[1]}}}]
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {gw_port}, hosts: [shop.example.com, api.example.com]}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: shop}}
spec:
  gateways: [edge]
  hosts: [shop.example.com]
  rules: [{{destinations: [{{service: shop}}]}}]
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: api}}
spec:
  gateways: [edge]
  hosts: [api.example.com]
  rules:
  - matches: [{{path: {{prefix: /v1/}}}}]
    destinations: [{{service: api}}]
"""


async def test_host_and_path_routing_request_ids_and_access_log(tmp_path: Path) -> None:
    async with (
        HttpBackend("shop", host="127.0.0.3") as shop,
        HttpBackend("api", host="127.0.0.4") as api,
        running_control_plane(tmp_path / "cp") as app,
    ):
        gw_port = free_port()
        await apply_yaml(
            app, mesh(shop.address, api.address, free_port("127.0.0.4"), gw_port), wait=False
        )
        async with (
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "api-1")),
            running_gateway(app, tmp_path / "gw", gw_port) as gw,
            httpx.AsyncClient(timeout=10, trust_env=False) as client,
        ):
            await wait_served(client, gw.url + "/", "shop.example.com")
            await wait_served(client, gw.url + "/v1/ping", "api.example.com")

            # host routing: a sidecar-less service (adoption step 1)
            r = await client.get(gw.url + "/cart?x=1", headers={"host": "shop.example.com"})
            assert r.status_code == 200
            body = r.json()
            assert (body["backend"], body["path"], body["query"]) == ("shop", "/cart", "x=1")

            # host + path routing: a service behind its sidecar
            mine = "client-chosen-id"
            r = await client.get(
                gw.url + "/v1/items", headers={"host": "api.example.com", "x-request-id": mine}
            )
            assert r.status_code == 200
            body = r.json()
            assert (body["backend"], body["path"]) == ("api", "/v1/items")
            request_id = body["headers"]["x-request-id"]
            assert request_id != mine  # the gateway does not let a client choose it
            uuid.UUID(request_id)
            assert api.seen[-1].headers["x-forwarded-for"]  # the client address travels

            # no route for the path on that host, nor for an unknown host
            r = await client.get(gw.url + "/admin", headers={"host": "api.example.com"})
            assert (r.status_code, "x-backend" in r.headers) == (404, False)
            r = await client.get(gw.url + "/", headers={"host": "evil.example.com"})
            assert (r.status_code, "x-backend" in r.headers) == (404, False)
            assert api.requests_by_path["/admin"] == 0

            def logged() -> dict[str, object] | None:
                for line in gw.access:
                    entry = json.loads(line)
                    if entry["request_id"] == request_id:
                        return dict(entry)
                return None

            entry = await wait_until(logged, timeout=20, what="the access-log line")
            assert isinstance(entry, dict)
            assert entry["status"] == 200
            assert entry["path"] == "/v1/items"
            assert entry["authority"] == "api.example.com"
            assert entry["upstream_cluster"] == "outbound|default/api|http"
            assert entry["response_flags"] == "-"
            no_route = await wait_until(
                lambda: [e for e in map(json.loads, gw.access) if e["path"] == "/admin"],
                timeout=20,
                what="the access-log line of the unrouted request",
            )
            assert isinstance(no_route, list)
            assert no_route[0]["status"] == 404 and no_route[0]["response_flags"] == "NR"
        assert any("Envoy running" in m for m in gw.messages)
        assert gw.runner.statistics().state == "stopped"
