"""The NGAC engine wired to the control plane (``server/authz.py``): its journal goes
through the plane's admission, and no change is lost while the engine is being built."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from tests.unit.authz.test_engine import SHOP, WEB

from gossamer.authz.audit import AuditLog
from gossamer.model.access_policy import AccessCommand
from gossamer.polling import wait_until
from gossamer.server import authz as wiring
from gossamer.store.memory import MemoryStore
from gossamer.testing.controlplane import memory_control_plane


@pytest.mark.asyncio
async def test_a_change_made_while_the_engine_is_built_reaches_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryStore()
    real_append = wiring.PlaneJournal.append

    async def append_after_a_foreign_write(
        self: wiring.PlaneJournal, entries: Sequence[AccessCommand]
    ) -> int:
        # another writer's policy lands after the engine listed the model, before it is
        # attached: the plane's watch absorbs it and tells the (not yet attached) listener
        await store.apply(puts=[SHOP.to_manifest()])
        await wait_until(lambda: SHOP.key in self.plane.model.resources, what="the watch")
        return await real_append(self, entries)

    monkeypatch.setattr(wiring.PlaneJournal, "append", append_after_a_foreign_write)
    async with memory_control_plane(store) as plane:
        engine = (await wiring.open_authz(plane, AuditLog(None))).engine
        assert engine.graph.find(WEB) is None and engine.rebuild_pending
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(engine.run())
            await wait_until(lambda: engine.graph.find(WEB) is not None, what="the rebuild")
            task.cancel()
        assert engine.check(WEB, "cart:/items", "GET")
        assert [m["metadata"]["name"] for m in await plane.list("AccessCommand")] == [
            "c-0000000001"
        ]
