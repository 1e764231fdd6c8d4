"""The NGAC engine wired to the reconciler: one writer and one watcher of the store.

The engine keeps its journal through :class:`PlaneJournal`, i.e. through the control
plane's admission as the control plane's own internal kind, and follows AccessPolicy and
AccessCommand changes through the plane's listeners (its applies, and its one watch for
anyone else's), so nothing but the control plane reads changes from or writes to the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence

from gossamer.authz.audit import AuditLog
from gossamer.authz.engine import AUTHZ_KINDS, AuthzEngine
from gossamer.authz.service import AuthzService
from gossamer.controlplane.enforcement import check_prefix_names, check_tcp_enforcement
from gossamer.controlplane.plane import ControlPlane
from gossamer.model.access_policy import AccessCommand
from gossamer.model.base import Resource
from gossamer.types import ResourceKey


class PlaneJournal:
    """A :class:`~gossamer.authz.command_journal.CommandJournal` kept by ``plane``.

    The engine takes :meth:`held` (the plane's apply lock) before its own lock, and appends
    inside it: the one lock order (apply, then engine) that ``apply --wait`` also follows
    when its publish freezes the graph (``ControlPlane.apply_lock``)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        #: the task holding the plane's apply lock through :meth:`held`
        self._holder: asyncio.Task[object] | None = None

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """The plane's apply lock, held by the calling task: its appends inside write
        without taking it again."""
        async with self.plane.apply_lock:
            self._holder = asyncio.current_task()
            try:
                yield
            finally:
                self._holder = None

    async def append(self, entries: Sequence[AccessCommand]) -> int:
        if self._holder is not None and self._holder is asyncio.current_task():
            result = await self.plane.apply_held(entries, internal=True)
        else:
            result = await self.plane.apply(entries, internal=True)
        return result.revision


class _Relay:
    """Holds the changes told while the engine is being built, then hands everything on."""

    def __init__(self) -> None:
        self.held: list[tuple[Mapping[ResourceKey, Resource | None], int]] = []
        self.engine: AuthzEngine | None = None

    def __call__(self, changes: Mapping[ResourceKey, Resource | None], revision: int) -> None:
        if self.engine is None:
            self.held.append((changes, revision))
        else:
            self.engine.changed(changes, revision)

    def attach(self, engine: AuthzEngine) -> None:
        for changes, revision in self.held:
            engine.changed(changes, revision)
        self.held.clear()
        self.engine = engine


async def open_authz(plane: ControlPlane, audit: AuditLog, admin: str = "admin") -> AuthzService:
    """The NGAC service over ``plane``: its engine built from the plane's loaded model,
    writing through the plane, told of its changes (also those made while it is built), and
    asked before the plane stores an AccessPolicy. Call after ``plane.load()``; run
    ``engine.run()`` beside ``plane.run()``."""
    model = plane.model
    assert model is not None, "load the control plane before opening the engine"
    relay = _Relay()
    plane.add_listener(set(AUTHZ_KINDS), relay)
    resources = [r for k, r in model.resources.items() if k.kind in AUTHZ_KINDS]
    engine = await AuthzEngine.open(PlaneJournal(plane), resources, model.revision, admin)
    relay.attach(engine)
    plane.enforcement.attach(engine)  # sidecars enforce the graph (translate.rbac)
    authz = AuthzService(engine, audit)
    plane.add_validator({"AccessPolicy"}, authz.validate_policies)
    plane.add_validator({"AccessPolicy"}, check_prefix_names)
    plane.add_validator({"Mesh", "Service"}, check_tcp_enforcement)
    return authz
