"""``Registry.wait_ready`` (``gossamer agent wait-ready``): what it waits for before the
proxies, and that a host with nothing connected is never called ready."""

from __future__ import annotations

import pytest

from gossamer.model.internal import HostScope
from gossamer.registry import Registry

from .mesh import ANY, workload


@pytest.mark.asyncio
async def test_a_gateways_host_waits_for_its_gateways_proxy(registry: Registry) -> None:
    token, _ = await registry.create_token(scope=HostScope(gateway="default/edge"))
    agent_id, _ = await registry.join(token, "gw-edge")
    found = await registry.wait_ready(agent_id, 0.2)
    assert not found.ready
    assert found.waiting == ["proxy gateway~default~edge is not connected"]


@pytest.mark.asyncio
async def test_an_agent_waits_for_health_then_for_its_sidecars(registry: Registry) -> None:
    token, _ = await registry.create_token(scope=ANY)
    agent_id, _ = await registry.join(token, "vm-1")
    await registry.set_workloads(agent_id, [workload("cart-1")])
    await registry.set_health(agent_id, {"cart-1": "unhealthy"})
    found = await registry.wait_ready(agent_id, 0.2)
    assert found.waiting == [
        "Workload default/cart-1 is unhealthy (its health check has not passed)"
    ]
    await registry.set_health(agent_id, {"cart-1": "healthy"})
    found = await registry.wait_ready(agent_id, 0.2)
    assert found.waiting == ["proxy sidecar~default~cart-1 is not connected"]
