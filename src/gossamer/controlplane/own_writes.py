"""This plane's writes to a store others write to, until the store's watch brings them in.

On such a store (``Store.exclusive`` false: replicas on etcd) a write's revision may follow
changes of other writers that the model has not seen yet. Taking the snapshot an apply
validated as the model would drop them, and the watch would then skip them as older than
the model. So the model takes every stored change from the watch, in order, this plane's
own writes included, and an apply waits here until the watch has brought its write in.
When nothing was stored between the model an apply was checked on and its write, the watch
hands over that apply's validated snapshot (indexes and all) instead of applying the change
again.
"""

from __future__ import annotations

import asyncio

from gossamer.model import ModelSnapshot


class OwnWrites:
    def __init__(self) -> None:
        #: revision -> (the model the write was checked on, the model it made)
        self._writes: dict[int, tuple[ModelSnapshot, ModelSnapshot]] = {}
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    def handover(self, revision: int, model: ModelSnapshot) -> ModelSnapshot | None:
        """The snapshot this plane's write at ``revision`` made, if it was checked on
        ``model`` (the model now: nothing was stored between); else None."""
        own = self._writes.get(revision)
        return own[1] if own is not None and own[0] is model else None

    def reached(self, revision: int) -> None:
        """The model is at ``revision``: the writes up to it are in."""
        for at, waiter in self._waiters:
            if at <= revision and not waiter.done():
                waiter.set_result(None)

    async def wait(
        self,
        revision: int,
        timeout: float,  # noqa: ASYNC109 (a bound the caller reports)
        checked: tuple[ModelSnapshot, ModelSnapshot] | None = None,
    ) -> bool:
        """Until the model reaches ``revision``: another writer's change, or this plane's
        write ``checked`` on one model into another (to hand over); False if it did not
        within ``timeout`` seconds."""
        waiter = asyncio.get_running_loop().create_future()
        entry = (revision, waiter)
        if checked is not None:
            self._writes[revision] = checked
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                await waiter
            return True
        except TimeoutError:
            return False
        finally:
            if checked is not None:
                self._writes.pop(revision, None)
            self._waiters.remove(entry)
