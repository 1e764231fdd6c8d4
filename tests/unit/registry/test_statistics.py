"""``Registry.statistics``: agents by state and join tokens still usable."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from gossamer.controlplane.plane import ControlPlane
from gossamer.registry import Registry, RegistryStatistics

from .mesh import ANY, Clock


@pytest.mark.asyncio
async def test_agents_by_state_and_unused_tokens(registry: Registry, clock: Clock) -> None:
    assert registry.statistics() == RegistryStatistics(0, 0, 0, 0)
    first, _ = await registry.create_token(scope=ANY)
    second, _ = await registry.create_token(scope=ANY)
    await registry.create_token(scope=ANY)
    await registry.create_token(timedelta(seconds=60), scope=ANY)
    await registry.join(first, "vm-1")
    await registry.join(second, "vm-2")
    await registry.revoke("vm-2")
    clock.advance(61)  # the last token expires: no longer usable
    stats = registry.statistics()
    assert stats == RegistryStatistics(
        active_agents=1, unreachable_agents=0, revoked_agents=1, unused_tokens=1
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.unused_tokens = 0  # type: ignore[misc]


@pytest.mark.asyncio
async def test_zeros_while_the_plane_loads(plane: ControlPlane) -> None:
    assert Registry(plane).statistics() == RegistryStatistics(0, 0, 0, 0)
