"""TrafficPolicy.healthCheck in the answers to an agent's registration and heartbeats: per
workload, from its most specific subset's policy, else its service's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import prometheus_client
import pytest
import pytest_asyncio

from gossamer.api.app import create_api
from gossamer.model import parse_manifest
from gossamer.registry import Registry

from .mesh import manifest, workload


@pytest_asyncio.fixture
async def client(registry: Registry) -> AsyncIterator[httpx.AsyncClient]:
    api = create_api(registry.plane, metrics=prometheus_client.CollectorRegistry(), agents=registry)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api), base_url="http://api"
    ) as c:
        yield c


def _labelled(name: str, version: str) -> dict[str, Any]:
    w = workload(name)
    w["metadata"]["labels"] = {"version": version}
    return w


def _policy(name: str, **spec: Any) -> dict[str, Any]:
    return manifest("TrafficPolicy", name, {"service": "cart", **spec})


async def _join(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    created = await client.post(
        "/v1/tokens", json={"scope": {"anyService": True, "anyNamespace": True}}
    )
    joined = await client.post(
        "/v1/agents/join", json={"token": created.json()["token"], "host": "vm-1"}
    )
    body = joined.json()
    return body["agentId"], {"Authorization": f"Bearer {body['credential']}"}


@pytest.mark.asyncio
async def test_answers_carry_each_workloads_policy_check(
    client: httpx.AsyncClient, registry: Registry
) -> None:
    agent_id, auth = await _join(client)
    workloads = [_labelled("cart-1", "v1"), _labelled("cart-2", "v2")]

    async def heartbeat() -> dict[str, Any]:
        r = await client.post(
            f"/v1/agents/{agent_id}/health",
            json={"workloads": {"cart-1": "healthy"}},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        checks: dict[str, Any] = r.json()["healthChecks"]
        return checks

    put = await client.put(
        f"/v1/agents/{agent_id}/workloads", json={"workloads": workloads}, headers=auth
    )
    assert put.status_code == 200, put.text
    assert put.json()["healthChecks"] == {}

    async def apply(*manifests: dict[str, Any]) -> None:
        await registry.plane.apply([parse_manifest(m) for m in manifests])

    await apply(_policy("cart", healthCheck={"http": {"path": "/ready"}, "interval": "3s"}))
    service_check = {
        "http": {"path": "/ready"},
        "interval": "3s",
        "timeout": "1s",
        "unhealthyThreshold": 2,
        "healthyThreshold": 1,
        "trafficPolicy": "default/cart",
    }
    assert await heartbeat() == {"default/cart-1": service_check, "default/cart-2": service_check}

    # a subset's policy replaces the service's as a whole: without a check, none
    await apply(_policy("cart-v2", subset={"version": "v2"}))
    assert await heartbeat() == {"default/cart-1": service_check}

    # with one, the most specific subset's (TCP: no http)
    await apply(_policy("cart-v2", subset={"version": "v2"}, healthCheck={"unhealthyThreshold": 5}))
    again = await client.put(
        f"/v1/agents/{agent_id}/workloads", json={"workloads": workloads}, headers=auth
    )
    assert again.json()["healthChecks"]["default/cart-2"] == {
        "interval": "5s",
        "timeout": "1s",
        "unhealthyThreshold": 5,
        "healthyThreshold": 1,
        "trafficPolicy": "default/cart-v2",
    }

    await registry.plane.apply(
        (), deletes=[parse_manifest(_policy("cart")).key, parse_manifest(_policy("cart-v2")).key]
    )
    assert await heartbeat() == {}
