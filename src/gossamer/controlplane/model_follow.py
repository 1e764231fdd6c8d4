"""The control plane's model as the store has it: read whole at start, then every stored
change the store's watch brings in, in revision order.

On a store only this process writes (``Store.exclusive``: SQLite) the snapshot an apply
checked becomes the model as soon as the write is stored. On one others write to as well
(replicas on etcd, several planes on one ``MemoryStore``) the model takes this plane's
writes from the watch too, after whatever others stored before them (``own_writes``):
taking the checked snapshot at once dropped those, for good.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from gossamer.controlplane.admission import CheckedModels
from gossamer.controlplane.own_writes import OwnWrites
from gossamer.errors import StaleModelError
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.store.base import ChangeBatch, Store
from gossamer.types import ResourceKey

log = logging.getLogger(__name__)

#: seconds an apply waits for the store's watch to bring a write in
CATCH_UP_S = 10.0
#: how many times an apply is checked and tried when other replicas keep writing first,
#: pausing up to ``STALE_PAUSE_S`` x the attempt's number (at random) before the next
STALE_ATTEMPTS = 10
STALE_PAUSE_S = 0.005

T = TypeVar("T")


class ModelFollower:
    def __init__(
        self,
        store: Store,
        checked: CheckedModels,
        mark_dirty: Callable[[], None],
        tell: Callable[[Iterable[ResourceKey]], None],
    ) -> None:
        """``checked``: which model is known consistent (an installed apply's is);
        ``mark_dirty``: a change came in, to publish; ``tell``: the keys it changed."""
        self.store = store
        self.model: ModelSnapshot | None = None
        self._checked = checked
        self._mark_dirty = mark_dirty
        self._tell = tell
        #: the store's watch is running (``follow``): it brings in every stored change
        self.following = False
        #: an ``apply --wait`` is writing and will publish the model itself: what the
        #: watch brings in meanwhile is left to that round (``absorb`` marks nothing)
        self.publish_owed = False
        #: this plane's writes the watch has not brought in yet
        self._own = OwnWrites()

    async def load(self) -> None:
        """Read the whole store into the model."""
        stored, revision = await self.store.list()
        self.model = ModelSnapshot.from_stored(stored, revision)

    async def follow(self) -> None:
        """Bring every change stored after the model's revision in, until cancelled."""
        assert self.model is not None, "load() first"
        self.following = True
        try:
            async for batch in self.store.watch(self.model.revision):
                self.absorb(batch)
        finally:
            self.following = False

    def absorb(self, batch: ChangeBatch) -> None:
        """Bring one stored transaction into the model: another writer's, or this plane's
        own on a store others write to as well (``stored``)."""
        assert self.model is not None
        fresh = [c for c in batch if c.revision > self.model.revision]
        if not fresh:
            return
        revision = fresh[-1].revision
        own = self._own.handover(revision, self.model)
        if own is not None:
            self._install(own, revision)
        else:
            puts = [parse_manifest(c.resource.manifest) for c in fresh if c.type == "put"]
            deletes = [c.key for c in fresh if c.type == "delete"]
            self.model = self.model.with_changes(puts, deletes, revision=revision)
        if not self.publish_owed:
            self._mark_dirty()
        self._tell({c.key for c in fresh})
        self._own.reached(revision)

    async def stored(
        self,
        revision: int,
        before: ModelSnapshot,
        after: ModelSnapshot,
        keys: Iterable[ResourceKey],
    ) -> bool:
        """An apply's write of ``keys``, checked on ``before`` into ``after``, returned
        ``revision``: the model takes it. False if nothing was written."""
        assert self.model is not None
        if self.store.exclusive or not self.following:
            if revision <= self.model.revision:
                return False
            # nothing was stored between the model and this write (this plane is the only
            # writer, or does not follow the store yet): ``after`` is the model
            self._install(after, revision)
            self._tell(keys)
        elif self.model.revision < revision and not await self._own.wait(
            revision, CATCH_UP_S, (before, after)
        ):
            log.warning(
                "the store's watch has not brought in this plane's write at revision %d "
                "after %g s; proxies get it once it does",
                revision,
                CATCH_UP_S,
            )
        return True

    async def fresh(self, once: Callable[[], Awaitable[T]]) -> T:
        """``once()``: an apply checked on the model and stored only if nothing was
        stored since the model's revision. When another replica's write came between,
        read it in and check again (``STALE_ATTEMPTS`` in all): two replicas never both
        store what only one of them may (two workloads on one address, a route to a
        service deleted meanwhile)."""
        for attempt in range(1, STALE_ATTEMPTS + 1):
            try:
                return await once()
            except StaleModelError as stale:
                if attempt == STALE_ATTEMPTS or not self.following:
                    raise
                await self._caught_up(stale.revision)
                # (a random pause: two replicas writing all the time take turns)
                await asyncio.sleep(random.uniform(0, STALE_PAUSE_S * attempt))
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _caught_up(self, revision: int) -> None:
        """Until the model holds what was stored up to ``revision`` (another replica's
        write met by an apply), or ``CATCH_UP_S`` passed."""
        assert self.model is not None
        if self.model.revision < revision:
            await self._own.wait(revision, CATCH_UP_S)

    def _install(self, after: ModelSnapshot, revision: int) -> None:
        """``after``, checked by an apply and stored at ``revision``, is the model."""
        self.model = after.at_revision(revision)
        self._checked.stored(after, self.model)
