"""A publish round's batches: the loop has nothing to send until the first batch is back
from the worker thread, so the first ones are short."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from test_tls_readiness import PROXIES, mesh

from gossamer.controlplane.plane import ControlPlane
from gossamer.store.memory import MemoryStore
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor


@pytest.mark.asyncio
async def test_a_rounds_first_batches_are_short_and_grow_to_the_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loop has nothing to send until the first batch is back: it is an eighth of the
    slice, and each next one twice the one before, up to the slice."""
    cache = SnapshotCache()
    plane = ControlPlane(MemoryStore(), cache, XdsMonitor(CollectorRegistry()))
    await plane.load()
    await plane.apply(list(mesh("off").resources.values()))
    for p in PROXIES:
        cache.attach(p)
    budgets: list[float] = []
    real = plane.publisher._batch

    def one_proxy_each(jobs: Any, start: int, slice_s: float, *args: Any) -> Any:
        budgets.append(slice_s)
        out, _ = real(jobs[: start + 1], start, slice_s, *args)
        return out, start + 1

    monkeypatch.setattr(plane.publisher, "_batch", one_proxy_each)
    await plane.publisher.publish(slice_s=0.008)
    assert len(budgets) == len(PROXIES) >= 4
    assert budgets[:4] == [0.001, 0.002, 0.004, 0.008]
    assert set(budgets[4:]) <= {0.008}
