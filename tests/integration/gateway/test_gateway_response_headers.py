"""No ``x-envoy-*`` response header reaches a client through the gateway, whichever Envoy
behind it added one; between sidecars they stay (a caller's Envoy reads them)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, mesh_envoy, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WEB, REVIEWS = "127.0.0.2", "127.0.0.3"


def mesh(app_port: int, gw_port: int, local_port: int) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: web-1}}
spec:
  service: web
  address: {WEB}
  ports: [{{port: {free_port(WEB)}, appPort: 1}}]
  dependencies: [{{service: reviews, localAddress: {WEB}, localPort: {local_port}}}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: reviews-1}}
spec:
  service: reviews
  address: {REVIEWS}
  appAddress: {REVIEWS}
  ports: [{{port: {free_port(REVIEWS)}, appPort: {app_port}}}]
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {gw_port}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: reviews}}]}}]
"""


def envoy_headers(r: httpx.Response) -> list[str]:
    return sorted(k for k in r.headers if k.lower().startswith("x-envoy-"))


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_client_of_the_gateway_sees_no_x_envoy_response_header(
    tmp_path: Path, delta: bool
) -> None:
    gw_port, local_port = free_port(), free_port(WEB)
    async with (
        HttpBackend("reviews-v1", host=REVIEWS) as reviews,
        running_control_plane(tmp_path / "cp") as app,
    ):
        await apply_yaml(app, mesh(reviews.address[1], gw_port, local_port), wait=False)
        proxies = [
            ProxyIdentity("gateway", "default", "edge"),
            ProxyIdentity("sidecar", "default", "web-1"),
            ProxyIdentity("sidecar", "default", "reviews-1"),
        ]
        envoys = [mesh_envoy(app, p, delta=delta) for p in proxies]
        async with envoys[0], envoys[1], envoys[2], httpx.AsyncClient(timeout=5) as client:

            async def served(url: str) -> httpx.Response | None:
                try:
                    r = await client.get(url)
                except httpx.TransportError:
                    return None
                return r if r.status_code == 200 and "x-backend" in r.headers else None

            # client -> gateway -> reviews' sidecar -> reviews
            through_gateway = await wait_until(
                lambda: served(f"http://127.0.0.1:{gw_port}/hello"),
                timeout=30,
                what="a response through the gateway",
            )
            assert isinstance(through_gateway, httpx.Response)
            assert envoy_headers(through_gateway) == [], through_gateway.headers

            # web -> web's sidecar -> reviews' sidecar -> reviews: kept inside the mesh
            between = await wait_until(
                lambda: served(f"http://{WEB}:{local_port}/hello"),
                timeout=30,
                what="a response between sidecars",
            )
            assert isinstance(between, httpx.Response)
            assert "x-envoy-upstream-service-time" in envoy_headers(between)
