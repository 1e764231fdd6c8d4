"""Two meshes on one machine (two demos; two test workers at once), each with its own
control plane and the same Services: each mesh's stable local addresses come from its own
seed, so both web sidecars bind their outbound listener for ``reviews:9080`` and each
reaches its own mesh's reviews (before seeds both got 127.139.215.108:9080: one Envoy could
not bind it and its app's requests reached the other mesh)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client, apply_yaml, mesh_envoy, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1")


def manifests(reviews_host: str, reviews_port: int) -> str:
    """web (on 127.0.0.2) calls reviews at its stable local address (nothing explicit)."""
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
  address: 127.0.0.2
  ports: [{{port: {free_port("127.0.0.2")}, appPort: 1}}]
  dependencies: [{{service: reviews}}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: reviews-1}}
spec:
  service: reviews
  address: {reviews_host}
  appAddress: {reviews_host}
  ports: [{{port: {free_port(reviews_host)}, appPort: {reviews_port}}}]
"""


async def reviews_address(app: ControlPlaneApp) -> str:
    """reviews' stable local address, as ``gossamer describe`` shows it."""
    async with api_client(app) as client:
        r = await client.get("/v1/describe/services/default/reviews")
    r.raise_for_status()
    address = r.json()["service"]["localAddress"]
    assert isinstance(address, str)
    return address


async def reaches(address: str, backend: str) -> None:
    """Until a request to ``address:9080`` (web's sidecar) is answered by ``backend``."""
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:

        async def answered() -> bool:
            try:
                r = await client.get(f"http://{address}:9080/hello")
            except httpx.TransportError:
                return False
            return r.status_code == 200 and json.loads(r.text)["backend"] == backend

        await wait_until(answered, timeout=30, what=f"{address}:9080 reaching {backend}")


async def test_two_meshes_with_the_same_services_each_reach_their_own(tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        backends = {
            "a": await stack.enter_async_context(HttpBackend("reviews-a", host="127.0.0.3")),
            "b": await stack.enter_async_context(HttpBackend("reviews-b", host="127.0.0.4")),
        }
        apps = {
            mesh: await stack.enter_async_context(running_control_plane(tmp_path / mesh))
            for mesh in backends
        }
        for mesh, app in apps.items():
            host, port = backends[mesh].address
            await apply_yaml(app, manifests(host, port), wait=False)
        addresses = {mesh: await reviews_address(app) for mesh, app in apps.items()}
        for app in apps.values():
            for proxy in (WEB, REVIEWS):
                await stack.enter_async_context(mesh_envoy(app, proxy))
        for mesh in apps:
            await reaches(addresses[mesh], f"reviews-{mesh}")
        assert addresses["a"] != addresses["b"]


async def test_a_restarted_control_plane_keeps_its_addresses(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        await apply_yaml(app, manifests("127.0.0.3", 1), wait=False)
        before = await reviews_address(app)
    async with running_control_plane(tmp_path / "cp") as app:
        assert await reviews_address(app) == before
