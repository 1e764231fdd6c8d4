"""The NGAC engine as the server runs it: over a real ``ControlPlane`` (journal written
through ``ControlPlane.apply(internal=True)``, changes told by the plane), both running."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from gossamer.authz.audit import AuditLog
from gossamer.authz.engine import AuthzEngine
from gossamer.controlplane.plane import ControlPlane
from gossamer.model import parse_manifest
from gossamer.model.base import Resource
from gossamer.server.authz import open_authz
from gossamer.store.base import Store
from gossamer.testing.controlplane import memory_control_plane


@contextlib.asynccontextmanager
async def authz_plane(
    store: Store | None = None,
) -> AsyncIterator[tuple[ControlPlane, AuthzEngine]]:
    """A running control plane over ``store`` (memory by default; closed on exit) and the
    engine wired to it, its ``run`` task going."""
    async with memory_control_plane(store) as plane:
        engine = (await open_authz(plane, AuditLog(None))).engine
        try:
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(engine.run())
                try:
                    yield plane, engine
                finally:
                    task.cancel()
        except BaseExceptionGroup as group:
            raise group.exceptions[0] if len(group.exceptions) == 1 else group from None


async def stored_resources(store: Store) -> tuple[list[Resource], int]:
    """Every resource the store holds, parsed, and its revision (to open a fresh engine)."""
    stored, revision = await store.list()
    return [parse_manifest(s.manifest) for s in stored], revision


class NoJournal:
    """For an engine that only reads: refuses every write."""

    async def append(self, entries: object) -> int:
        raise AssertionError("this engine was opened to compare, not to write")


async def fresh_engine(store: Store) -> AuthzEngine:
    """An engine built from scratch from what ``store`` holds."""
    resources, revision = await stored_resources(store)
    return await AuthzEngine.open(NoJournal(), resources, revision)
