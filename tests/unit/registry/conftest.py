from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from gossamer.controlplane.plane import ControlPlane
from gossamer.model import kinds as model_kinds
from gossamer.model import parse_manifest
from gossamer.registry import Registry
from gossamer.store.memory import MemoryStore
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor

from .mesh import SHOP, Clock


@pytest.fixture(autouse=True)
def isolated_kinds() -> Iterator[None]:
    """Forget the registry's kinds after each test (other tests list the known kinds)."""
    kinds, internal = dict(model_kinds.KINDS), set(model_kinds.INTERNAL_KINDS)
    yield
    model_kinds.KINDS.clear()
    model_kinds.KINDS.update(kinds)
    model_kinds.INTERNAL_KINDS.clear()
    model_kinds.INTERNAL_KINDS.update(internal)


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
