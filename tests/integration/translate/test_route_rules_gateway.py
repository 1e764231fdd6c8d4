"""Route rules at ingress, through a real gateway Envoy: a rewrite and header changes seen by
the backend, a direct response, a redirect, and a local rate limit (429 past its budget)
that a later rule change neither refills nor turns into a listener change."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BACKEND = "127.0.0.3"
BUDGET = 3


def ingress(extra: list[dict[str, Any]]) -> Manifest:
    rules = [
        {
            "name": "limited",
            "matches": [{"path": {"prefix": "/limited"}}],
            "destinations": [{"service": "web"}],
            "rateLimit": {"requests": BUDGET, "per": "1h"},
        },
        {
            "matches": [{"path": {"prefix": "/v1/"}}],
            "rewrite": {"prefix": "/api/"},
            "headers": {
                "request": {"set": {"x-from": "edge"}, "remove": ["cookie"]},
                "response": {"set": {"x-served-by": "mesh"}},
            },
            "destinations": [{"service": "web"}],
        },
        {
            "matches": [{"path": {"exact": "/hello"}}],
            "directResponse": {"status": 200, "body": "hi"},
        },
        {"matches": [{"path": {"prefix": "/old/"}}], "redirect": {"prefix": "/new/"}},
        *extra,
        {"destinations": [{"service": "web"}]},
    ]
    return {
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": {"name": "edge"},
        "spec": {"gateways": ["edge"], "rules": rules},
    }


LISTENER_STATS = (
    r"^listener_manager\.(listener_modified|listener_in_place_updated|listener_removed)$"
)


async def test_rules_at_the_gateway(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    async with (
        HttpBackend("web", host=BACKEND) as web,
        running_control_plane(tmp_path) as app,
    ):
        gateway = {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {"address": "127.0.0.1", "port": port},
        }
        manifests = [
            service("web"),
            workload("web-1", "web", BACKEND, web.address[1], web.address[1], sidecar=False),
            gateway,
            ingress([]),
        ]
        await apply_manifests(app, manifests, wait=False)
        edge = f"http://127.0.0.1:{port}"
        async with (
            mesh_envoy(app, ProxyIdentity("gateway", "default", "edge")) as gw,
            httpx.AsyncClient(timeout=10) as c,
        ):

            async def served() -> bool:
                try:
                    return "x-backend" in (await c.get(edge + "/")).headers
                except httpx.TransportError:
                    return False

            await wait_until(served, timeout=30, what="the gateway to serve web")

            r = await c.get(edge + "/v1/books?id=7", headers={"cookie": "s=1"})
            seen = json.loads(r.text)
            assert (seen["path"], seen["query"]) == ("/api/books", "id=7")
            assert seen["headers"]["x-from"] == "edge" and "cookie" not in seen["headers"]
            assert r.headers["x-served-by"] == "mesh"

            before = web.requests
            r = await c.get(edge + "/hello")
            assert (r.status_code, r.text) == (200, "hi")
            r = await c.get(edge + "/old/a?b=c")
            assert r.status_code == 301
            assert r.headers["location"].endswith("/new/a?b=c")
            assert web.requests == before

            statuses = [(await c.get(edge + f"/limited/{i}")).status_code for i in range(5)]
            assert statuses == [200] * BUDGET + [429] * 2
            listeners = await gw.stats(LISTENER_STATS)

            probe = {
                "matches": [{"path": {"exact": "/probe"}}],
                "directResponse": {"status": 200, "body": "v2"},
            }
            await apply_manifests(app, [ingress([probe])])

            async def routed() -> bool:
                return (await c.get(edge + "/probe")).text == "v2"

            await wait_until(routed, timeout=20, what="the gateway to route /probe")
            assert (await c.get(edge + "/limited/after")).status_code == 429
            assert await gw.stats(LISTENER_STATS) == listeners
