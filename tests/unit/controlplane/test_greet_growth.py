"""Proxies built by ``greet`` (their first snapshot) must not make the next endpoint
change a full round. After a restart every proxy reconnects and is greeted, and the first
endpoint change then waited for a full rebuild of 1,000 proxies (the endpoint-change p99
of bench/xds_scale.py): once because the greeting grew the translation caches, once because
every greeted proxy was rebuilt rather than patched. A proxy greeted from another model
than the next round starts from must still be rebuilt in full."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from prometheus_client import CollectorRegistry
from test_prune_rounds import reviews_1
from test_tls_readiness import PROXIES, REVIEWS, mesh
from tests.unit.controlplane.test_incremental import rebuilt_by

from gossamer.controlplane import publisher as publisher_module
from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.store.memory import MemoryStore
from gossamer.translate.proxy import Translator
from gossamer.types import ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer

pytestmark = pytest.mark.asyncio


async def test_greeted_proxies_do_not_force_a_full_round(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(publisher_module, "PRUNE_SLACK", 10)
    cache = SnapshotCache()
    plane = ControlPlane(MemoryStore(), cache, XdsMonitor(CollectorRegistry()))
    await plane.load()
    await plane.apply(list(mesh("off").resources.values()))
    await plane.publish()  # a full round with nobody connected: it prunes to ~nothing
    async with greeted(plane, cache, PROXIES):
        pub = plane.publisher
        assert pub._caches_size() - 10 > 0  # (the greeting grew the caches past the slack)
        await plane.apply([reviews_1(3)])  # type: ignore[list-item]
        await plane.publish()
        assert pub.incremental_rounds == 1, "the first endpoint change was a full round"


@asynccontextmanager
async def greeted(
    plane: ControlPlane, cache: SnapshotCache, proxies: tuple[ProxyIdentity, ...]
) -> AsyncIterator[None]:
    """``proxies`` attached and given their first snapshot by the plane's ``greet``."""
    greeter = asyncio.create_task(plane.publisher.greet())
    try:
        for p in proxies:
            cache.attach(p)
        for _ in range(500):
            if all(cache.get(p.node_id) is not None for p in proxies):
                break
            await asyncio.sleep(0.01)
        assert all(cache.get(p.node_id) is not None for p in proxies)
        yield
    finally:
        greeter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await greeter


def endpoint_versions(cache: SnapshotCache, plane: ControlPlane) -> dict[str, dict[str, str]]:
    """Per proxy: its endpoint sets' versions as held, and as a fresh translator gives them."""
    assert plane.model is not None
    out = {}
    for p in PROXIES:
        snap = cache.get(p.node_id)
        assert snap is not None
        fresh = proxy_snapshot(Translator().proxy(plane.model, p), Serializer())
        for tag, s in (("held", snap), ("fresh", fresh)):
            out[f"{p.node_id} {tag}"] = {
                n: v.version for n, v in s.of(ResourceType.ENDPOINT).items()
            }
    return out


async def test_proxies_greeted_from_the_published_model_are_patched() -> None:
    cache = SnapshotCache()
    plane = ControlPlane(MemoryStore(), cache, XdsMonitor(CollectorRegistry()))
    await plane.load()
    await plane.apply(list(mesh("off").resources.values()))
    await plane.publish()
    async with greeted(plane, cache, PROXIES):
        built = rebuilt_by(plane)
        await plane.apply([reviews_1(3)])  # type: ignore[list-item]
        changed = await plane.publish()
    assert plane.publisher.incremental_rounds == 1
    assert {n for n, _ in changed}, "the change reached nobody"
    # only the sidecar of the changed workload (its own inbound side changed) is rebuilt
    assert built == {REVIEWS.node_id}, f"greeted from the published model: {built}"
    versions = endpoint_versions(cache, plane)
    for p in PROXIES:
        assert versions[f"{p.node_id} held"] == versions[f"{p.node_id} fresh"], p.node_id


async def test_a_proxy_greeted_from_an_unpublished_model_is_rebuilt() -> None:
    """Greeted while a change was not published yet, and the change undone before the next
    round: that round sees no change from the model it starts from, but the greeted proxy
    holds the undone one. Patching it would leave it there for good."""
    cache = SnapshotCache()
    plane = ControlPlane(MemoryStore(), cache, XdsMonitor(CollectorRegistry()))
    await plane.load()
    await plane.apply(list(mesh("off").resources.values()))
    await plane.publish()
    await plane.apply([reviews_1(3)])  # type: ignore[list-item]  # (not published)
    async with greeted(plane, cache, PROXIES):
        built = rebuilt_by(plane)
        await plane.apply([reviews_1(1)])  # type: ignore[list-item]  # undone
        await plane.publish()
    assert built == {p.node_id for p in PROXIES}
    versions = endpoint_versions(cache, plane)
    for p in PROXIES:
        assert versions[f"{p.node_id} held"] == versions[f"{p.node_id} fresh"], p.node_id
