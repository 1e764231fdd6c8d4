"""A publish round's batches: the loop has nothing to send until the first batch is back
from the worker thread, so the first ones are short; an endpoint round's patches run on
the loop in short slices, its full builds in the thread."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from test_prune_rounds import reviews_1
from test_tls_readiness import PROXIES, REVIEWS, WEB, mesh_plane

from gossamer.controlplane import publisher as publisher_module
from gossamer.types import ProxyIdentity


@pytest.mark.asyncio
async def test_a_rounds_first_batches_are_short_and_grow_to_the_slice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loop has nothing to send until the first batch is back: it is an eighth of the
    slice, and each next one twice the one before, up to the slice."""
    plane = await mesh_plane("off")
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


@pytest.mark.asyncio
async def test_an_endpoint_round_patches_on_the_loop_and_builds_in_the_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Patching merges prebuilt endpoint sets: on the loop, ``PATCH_SLICE`` at most per
    batch (handing it to the thread cost more than the work). The changed workload's own
    sidecar is built in full: in the worker thread, never on the loop."""
    plane = await mesh_plane("off")
    await plane.publish()
    publisher = plane.publisher
    loop_thread = threading.get_ident()
    where: dict[str, str] = {}
    patched_in: list[float] = []
    real_batch, real_build = publisher._batch, publisher.build

    def batch(jobs: Any, start: int, slice_s: float, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("patches_only"):
            patched_in.append(slice_s)
        return real_batch(jobs, start, slice_s, *args, **kwargs)

    def build(proxy: ProxyIdentity, *args: Any) -> Any:
        where[proxy.node_id] = "loop" if threading.get_ident() == loop_thread else "thread"
        return real_build(proxy, *args)

    monkeypatch.setattr(publisher, "_batch", batch)
    monkeypatch.setattr(publisher, "build", build)
    await plane.apply([reviews_1(3)])  # type: ignore[list-item]
    changed = await plane.publish()
    assert publisher.incremental_rounds == 1
    assert where == {REVIEWS.node_id: "thread"}, "only its own sidecar is built, in the thread"
    assert patched_in and set(patched_in) == {publisher_module.PATCH_SLICE}
    assert WEB.node_id in {node for node, _ in changed}, "a caller of reviews was patched"
