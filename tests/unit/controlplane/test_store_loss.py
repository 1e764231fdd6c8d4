"""``StoreLossGuard`` closes the xDS streams only after the grace, opens them when the store
answers again; the plane refuses writes at once while the store is lost (no I/O: the
store's verdicts are given to its ``StoreHealth``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.store_loss import StoreLossGuard
from gossamer.errors import ConfigError, StoreError
from gossamer.model import parse_manifest
from gossamer.polling import wait_until
from gossamer.store.etcd_health import StoreHealth
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import service
from gossamer.types import ResourceKey
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor

WHERE = "etcd at etcd://127.0.0.1:2379/gossamer"


async def _turns(n: int = 20) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_streams_close_after_the_grace_and_open_when_the_store_is_back() -> None:
    health = StoreHealth(WHERE)
    told: list[str] = []
    guard = StoreLossGuard(health, 3600.0, told.append, lambda: told.append("reopen"))
    loop = asyncio.get_running_loop()
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(guard.run())
        # lost and back within the grace: the streams stay
        health.mark_lost(loop.time(), datetime.now(UTC))
        await _turns()
        health.mark_ok()
        await _turns()
        assert told == [] and guard.closings == 0
        # lost for longer than the grace: closed once, with a reason naming the store
        guard.grace = 0.0
        health.mark_lost(loop.time(), datetime.now(UTC))
        await wait_until(lambda: told, timeout=5, what="the streams closed")
        assert len(told) == 1 and WHERE in told[0] and "another control-plane replica" in told[0]
        assert "unreachable since" in told[0]
        await _turns()
        assert guard.closings == 1 and len(told) == 1
        # back: streams accepted again
        health.mark_ok()
        await wait_until(lambda: told[-1:] == ["reopen"], timeout=5, what="streams reopened")
        task.cancel()


def test_a_negative_grace_is_refused() -> None:
    with pytest.raises(ConfigError, match="--store-loss-grace"):
        StoreLossGuard(StoreHealth(WHERE), -1.0, print, print)


@pytest.mark.asyncio
async def test_the_plane_refuses_writes_at_once_while_the_store_is_lost() -> None:
    store = MemoryStore()
    plane = ControlPlane(store, SnapshotCache(), XdsMonitor(CollectorRegistry()))
    try:
        await plane.load()
        plane.store_health = health = StoreHealth(WHERE)
        health.mark_lost(0.0, datetime.now(UTC))
        async with plane.apply_lock:  # an apply stuck in the store holds the lock
            async with asyncio.timeout(5):
                with pytest.raises(StoreError, match="nothing was changed"):
                    await plane.apply([parse_manifest(service("web"))])
                with pytest.raises(StoreError, match="unreachable since"):
                    await plane.delete([ResourceKey("Service", "default", "web")])
        assert (await store.list())[0] == []
        health.mark_ok()
        result = await plane.apply([parse_manifest(service("web"))])
        assert result.revision == 1
    finally:
        plane.monitor.close()
        await store.close()
