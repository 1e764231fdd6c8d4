"""Resources applied to the control plane -> real Envoys over ADS -> a client's requests."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, mesh_envoy, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_http_through_two_sidecars(tmp_path: Path, delta: bool) -> None:
    async with (
        HttpBackend("reviews-v1", host="127.0.0.3") as v1,
        running_control_plane(tmp_path / "cp") as app,
    ):
        local_port = free_port("127.0.0.2")
        await apply_yaml(
            app,
            f"""
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
  address: 127.0.0.2
  ports: [{{port: {free_port("127.0.0.2")}, appPort: 1}}]
  dependencies: [{{service: reviews, localAddress: 127.0.0.2, localPort: {local_port}}}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: reviews-1, labels: {{version: v1}}}}
spec:
  service: reviews
  address: 127.0.0.3
  appAddress: 127.0.0.3
  ports: [{{port: {free_port("127.0.0.3")}, appPort: {v1.address[1]}}}]
""",
            wait=False,
        )
        web = ProxyIdentity("sidecar", "default", "web-1")
        reviews = ProxyIdentity("sidecar", "default", "reviews-1")
        async with (
            mesh_envoy(app, web, delta=delta),
            mesh_envoy(app, reviews, delta=delta),
            httpx.AsyncClient(timeout=5) as client,
        ):

            async def answered() -> dict[str, object] | None:
                try:
                    r = await client.get(f"http://127.0.0.2:{local_port}/hello")
                except httpx.TransportError:
                    return None
                return json.loads(r.text) if r.status_code == 200 else None

            body = await wait_until(answered, timeout=30, what="a response through the mesh")
        assert isinstance(body, dict)
        assert body["backend"] == "reviews-v1"
        assert body["path"] == "/hello"
        statuses = {s.node_id: s for s in app.plane.proxy_status()}
        assert statuses[web.node_id].protocol == ("delta" if delta else "sotw")
