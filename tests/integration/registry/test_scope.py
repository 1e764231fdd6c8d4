"""What a host may register, through a real control plane over HTTP: a join token's scope
(service, namespace, addresses) bounds its agent's Workloads, and the hijack it closes — a
host with a token for another service registering a sidecar-less, weight-100 Workload of the
gateway's backend service — leaves a real gateway's traffic on the real backend."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.gateway import GatewayRunner, GatewaySettings
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client, apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SERVICES = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec: {ports: [{name: http, port: 9080}]}
"""


def workload(
    name: str, service: str, address: str, port: int, *, namespace: str = "default", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "gossamer.dev/v1",
        "kind": "Workload",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "service": service,
            "address": address,
            "ports": [{"port": port, "appPort": 9000}],
            **spec,
        },
    }


class Host:
    """A host that joined over REST (as an agent, or as whoever holds its credential)."""

    def __init__(self, client: httpx.AsyncClient, agent_id: str, credential: str) -> None:
        self.client, self.agent_id = client, agent_id
        self.auth = {"Authorization": f"Bearer {credential}"}

    async def register(self, *workloads: dict[str, Any], wait: bool = False) -> httpx.Response:
        """PUT the host's Workloads (with ``wait``: answered once affected proxies ACKed)."""
        return await self.client.put(
            f"/v1/agents/{self.agent_id}/workloads",
            params={"wait": "true", "timeout": "20"} if wait else None,
            json={"workloads": list(workloads)},
            headers=self.auth,
        )


async def joined(client: httpx.AsyncClient, host: str, scope: dict[str, Any]) -> Host:
    created = await client.post("/v1/tokens", json={"ttlSeconds": 600, "scope": scope})
    assert created.status_code == 200, created.text
    token = created.json()["token"]
    r = await client.post("/v1/agents/join", json={"token": token, "host": host})
    assert r.status_code == 200, r.text
    return Host(client, r.json()["agentId"], r.json()["credential"])


async def workloads(client: httpx.AsyncClient) -> list[str]:
    items = (await client.get("/v1/resources/Workload")).json()["items"]
    return sorted(f"{w['metadata']['namespace']}/{w['metadata']['name']}" for w in items)


def refusal(r: httpx.Response) -> str:
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "forbidden"
    (line,) = r.json()["errors"]
    return str(line)


async def test_a_host_registers_only_what_its_token_allows(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app) as c:
        await apply_yaml(app, SERVICES)
        reviews = await joined(c, "host-r", {"services": ["reviews"]})

        # another service, another namespace: 403 naming the workload and the scope
        web = refusal(await reviews.register(workload("web-1", "web", "127.0.0.2", 15001)))
        assert web.startswith(
            "Workload default/web-1: service default/web is outside what host host-r's join "
            "token allows (service reviews in namespace default)"
        )
        other_ns = workload("reviews-1", "reviews", "127.0.0.2", 15001, namespace="shop")
        assert "service shop/reviews is outside" in refusal(await reviews.register(other_ns))
        # one bad workload refuses the whole set: nothing was registered
        mixed = await reviews.register(
            workload("reviews-1", "reviews", "127.0.0.2", 15001),
            workload("web-1", "web", "127.0.0.2", 15002),
        )
        assert "default/web-1" in refusal(mixed) and "reviews-1" not in refusal(mixed)
        assert await workloads(c) == []

        # within scope: registered, and this first registration fixes the host's address
        ok = await reviews.register(workload("reviews-1", "reviews", "127.0.0.2", 15001))
        assert ok.status_code == 200, ok.text
        (agent,) = (await c.get("/v1/agents")).json()["items"]
        assert agent["addresses"] == ["127.0.0.2"]
        moved = await reviews.register(workload("reviews-1", "reviews", "127.0.0.9", 15001))
        assert refusal(moved).startswith(
            "Workload default/reviews-1: address 127.0.0.9 is not host host-r's (127.0.0.2)"
        )
        stored = (await c.get("/v1/resources/Workload/default/reviews-1")).json()
        assert stored["spec"]["address"] == "127.0.0.2"

        # a pinned host: its addresses come from the token, before any registration
        pinned = await joined(
            c, "host-p", {"services": ["web"], "addresses": ["127.0.0.5", "127.0.1.0/24"]}
        )
        elsewhere = await pinned.register(workload("web-1", "web", "127.0.0.6", 15001))
        assert "address 127.0.0.6 is not host host-p's (127.0.0.5, 127.0.1.0/24)" in refusal(
            elsewhere
        )
        in_cidr = await pinned.register(
            workload("web-1", "web", "127.0.0.5", 15001),
            workload("web-2", "web", "127.0.1.7", 15001),
        )
        assert in_cidr.status_code == 200, in_cidr.text

        # a token says what it allows, or is refused naming the flags
        bare = await c.post("/v1/tokens", json={"ttlSeconds": 600})
        assert bare.status_code == 422
        assert "--service NAME" in bare.text and "--any-service" in bare.text
        listed = {t["usedBy"]: t["scope"] for t in (await c.get("/v1/tokens")).json()["items"]}
        assert listed["host-r"]["services"] == ["reviews"]
        assert listed["host-p"]["addresses"] == ["127.0.0.5", "127.0.1.0/24"]


MESH = """
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
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {gw_port}, hosts: [shop.example.com]}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: shop}}
spec:
  gateways: [edge]
  hosts: [shop.example.com]
  rules: [{{destinations: [{{service: shop}}]}}]
"""


@contextlib.asynccontextmanager
async def gateway(app: ControlPlaneApp, workdir: Path) -> AsyncIterator[None]:
    """``gossamer gateway`` for Gateway ``edge``, in-process."""
    settings = GatewaySettings(
        name="edge", xds_addrs=(app.xds_addr,), workdir=workdir, drain_seconds=0, concurrency=1
    )
    runner = GatewayRunner(settings, on_access=lambda _: None, on_message=lambda _: None)
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(runner.run(stop))
        try:
            yield
        finally:
            stop.set()


async def test_a_host_cannot_hijack_the_gateways_backend(tmp_path: Path) -> None:
    async with (
        HttpBackend("shop", host="127.0.0.3") as shop,
        HttpBackend("hijacker", host="127.0.0.4") as hijacker,
        running_control_plane(tmp_path / "cp") as app,
        api_client(app) as c,
    ):
        gw_port = free_port()
        await apply_yaml(app, MESH.format(shop=shop.address, gw_port=gw_port), wait=False)
        async with (
            gateway(app, tmp_path / "gw"),
            httpx.AsyncClient(timeout=10, trust_env=False) as client,
        ):
            url, host = f"http://127.0.0.1:{gw_port}/", {"host": "shop.example.com"}

            async def served() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return "x-backend" in (await client.get(url, headers=host)).headers
                return False

            await wait_until(served, timeout=30, what="the gateway serving shop")

            # a host with a token for reviews claims shop's raw traffic, weight 100
            hostile = await joined(c, "host-x", {"services": ["reviews"]})
            claim = workload(
                "shop-2",
                "shop",
                hijacker.address[0],
                hijacker.address[1],
                sidecar=False,
                weight=100,
            )
            claim["spec"]["ports"] = [{"port": hijacker.address[1]}]
            r = await hostile.register(claim, wait=True)
            assert "Workload default/shop-2: service default/shop is outside" in refusal(r)
            assert await workloads(c) == ["default/shop-1"]

            answered: Counter[tuple[int, str | None]] = Counter()
            for _ in range(40):
                r = await client.get(url, headers=host)
                answered[(r.status_code, r.headers.get("x-backend"))] += 1
            assert answered == {(200, "shop"): 40}
            assert hijacker.requests == 0
