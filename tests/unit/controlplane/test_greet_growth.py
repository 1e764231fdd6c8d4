"""Proxies built by ``greet`` (their first snapshot) grow the translation caches with what
they use, not with garbage: that growth must not make the next endpoint change a full
round. After a restart every proxy reconnects and is greeted, and the first endpoint
change then waited for a full round of 1,000 proxies (the endpoint-change p99 of
bench/xds_scale.py)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from test_prune_rounds import reviews_1
from test_tls_readiness import PROXIES, mesh

from gossamer.controlplane import publisher as publisher_module
from gossamer.controlplane.plane import ControlPlane
from gossamer.store.memory import MemoryStore
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor

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
    greeter = asyncio.create_task(plane.publisher.greet())
    try:
        for p in PROXIES:
            cache.attach(p)
        for _ in range(500):
            if all(cache.get(p.node_id) is not None for p in PROXIES):
                break
            await asyncio.sleep(0.01)
        assert all(cache.get(p.node_id) is not None for p in PROXIES)
        pub = plane.publisher
        assert pub._caches_size() - 10 > 0  # (the greeting grew the caches past the slack)
        await plane.apply([reviews_1(3)])  # type: ignore[list-item]
        await plane.publish()
        assert pub.incremental_rounds == 1, "the first endpoint change was a full round"
    finally:
        greeter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await greeter
