"""The apply lock and the NGAC engine's lock are taken in one order (apply, then engine):
an ``apply --wait`` holds the apply lock while its publish freezes the graph, and an
administrative batch writes its journal through the plane's apply. If the batch took the
engine's lock first, a batch arriving during the apply's store write would deadlock both."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from tests.unit.authz.planes import authz_plane
from tests.unit.authz.test_engine import SHOP, WEB, apply, create

from gossamer.model.access_policy import AccessPolicy
from gossamer.store.base import Fence, Store
from gossamer.types import Manifest, ResourceKey


class _WatchedLock(asyncio.Lock):
    """An asyncio lock that says when a second taker starts waiting for it."""

    def __init__(self) -> None:
        super().__init__()
        self.contended = asyncio.Event()

    async def acquire(self) -> bool:
        if self.locked():
            self.contended.set()
        return await super().acquire()


class _PausedWrite:
    """Holds the next store write until released (the apply keeps its lock meanwhile)."""

    def __init__(self, store: Store) -> None:
        self.store, self.real = store, store.apply
        self.entered, self.release = asyncio.Event(), asyncio.Event()

    async def __call__(
        self,
        puts: Sequence[Manifest] = (),
        deletes: Sequence[ResourceKey] = (),
        *,
        fence: Fence | None = None,
        unchanged_since: int | None = None,
    ) -> int:
        self.store.apply = self.real  # type: ignore[method-assign]  # only the first write
        self.entered.set()
        await self.release.wait()
        return await self.real(puts, deletes, fence=fence, unchanged_since=unchanged_since)


@pytest.mark.asyncio
async def test_a_batch_during_an_apply_wait_store_write_does_not_deadlock() -> None:
    async with authz_plane() as (plane, engine):
        await apply(plane, engine, [SHOP])
        lock = _WatchedLock()
        plane._apply_lock = lock
        paused = _PausedWrite(plane.store)
        plane.store.apply = paused  # type: ignore[method-assign]
        changed = SHOP.model_copy(deep=True)
        changed.spec.users["spiffe://m/ns/default/sa/other"] = ["web"]
        changed = AccessPolicy.model_validate(changed.model_dump())
        async with asyncio.TaskGroup() as tg:
            applying = tg.create_task(plane.apply([changed], wait=True, wait_timeout=5))
            async with asyncio.timeout(5):
                await paused.entered.wait()  # the apply holds its lock, writing
            batch = tg.create_task(engine.execute("admin", create("cart:/checkout")))
            async with asyncio.timeout(5):
                await lock.contended.wait()  # the batch waits for the apply lock
            paused.release.set()
            try:
                async with asyncio.timeout(10):
                    await asyncio.gather(applying, batch)
            except TimeoutError:
                applying.cancel()
                batch.cancel()
                pytest.fail("the apply --wait and the batch deadlocked on each other's lock")
        assert engine.check(WEB, "cart:/checkout", "POST")  # the batch (and its obligation)
        assert engine.check("spiffe://m/ns/default/sa/other", "cart:/items", "GET")
