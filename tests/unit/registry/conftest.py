from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from prometheus_client import CollectorRegistry

from gossamer.controlplane.plane import ControlPlane
from gossamer.model import parse_manifest
from gossamer.registry import Registry
from gossamer.store.memory import MemoryStore
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor

from .mesh import SHOP, Clock


@pytest_asyncio.fixture
async def plane() -> AsyncIterator[ControlPlane]:
    store = MemoryStore()
    plane = ControlPlane(store, SnapshotCache(), XdsMonitor(CollectorRegistry()))
    try:
        yield plane
    finally:
        await store.close()


@pytest_asyncio.fixture
async def clock() -> Clock:
    return Clock()


@pytest_asyncio.fixture
async def registry(plane: ControlPlane, clock: Clock) -> Registry:
    """A Registry over a loaded plane holding the SHOP services."""
    reg = Registry(plane, clock=clock)
    await plane.load()
    await plane.apply([parse_manifest(m) for m in SHOP])
    return reg
