"""The state of one replica's election for a role (no I/O; ``etcd_leader.py`` runs it)."""

from __future__ import annotations

import asyncio

from gossamer.errors import FencedError
from gossamer.store.base import Fence


class Election:
    """The state of one replica's election for ``role``: who leads, and this replica's
    fencing token while it does (the leader key's create revision)."""

    def __init__(self, role: str, replica: str) -> None:
        self.role = role
        self.replica = replica
        self.leader: str | None = None
        self.token: int | None = None
        self._changed = asyncio.Event()

    @property
    def leading(self) -> bool:
        return self.token is not None

    def won(self, token: int) -> None:
        """The leader key is this replica's, created at revision ``token``."""
        self._set(self.replica, token)

    def saw(self, leader: str | None) -> None:
        """Another replica leads (or, None: no one, as far as this one can tell)."""
        self._set(leader, None)

    def fence(self) -> Fence:
        if self.token is None:
            led = f"replica {self.leader} leads it" if self.leader else "no replica leads it now"
            raise FencedError(
                f"this replica ({self.replica}) does not lead {self.role!r} ({led}): "
                "nothing was written; the leader does this work"
            )
        return Fence(self.role, self.token)

    async def changed(self) -> None:
        await self._changed.wait()

    def _set(self, leader: str | None, token: int | None) -> None:
        was = self.leading
        self.leader, self.token = leader, token
        if self.leading != was:
            self._changed.set()
            self._changed = asyncio.Event()
