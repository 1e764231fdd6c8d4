"""Does etcd answer? ``StoreHealth`` (state, no I/O) and ``EtcdProbe`` (the probe that sets it).

A replica that loses etcd must not pretend otherwise (docs/store.md, "When etcd is lost"):
while the probe finds no member answering, writes are refused at once (``check``),
``/readyz`` answers 503 with ``problem``, and after a grace the plane closes its xDS
streams (``controlplane.store_loss``). The probe is a linearizable read of the store's
identity key (one key, keys only) on each member in turn, each with a short deadline: a
member cut off from its cluster's quorum does not answer it either. One round in which no
member answers marks the store lost; the first answer marks it back.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import aetcd.rpc as rpc  # type: ignore[import-untyped]

from gossamer.errors import ConfigError, StoreError
from gossamer.store.etcd_identity import identity_key

if TYPE_CHECKING:
    from gossamer.store.etcd import EtcdStore

log = logging.getLogger(__name__)

#: seconds between probes, and the deadline of one member's answer
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0


class StoreHealth:
    """Whether the store answers, and since when it does not. ``where`` names it in
    messages (``etcd at etcd://10.0.0.1:2379/gossamer``). Times are given, not read:
    ``now`` is the event loop's clock, ``wall`` the time shown to people."""

    def __init__(self, where: str) -> None:
        self.where = where
        #: when the store was found lost (wall clock, UTC), None while it answers
        self.lost_since: datetime | None = None
        self._lost_at = 0.0
        #: times the store was lost since start
        self.losses = 0
        self._ok = asyncio.Event()
        self._ok.set()
        self._lost = asyncio.Event()

    @property
    def lost(self) -> bool:
        return self.lost_since is not None

    def mark_lost(self, now: float, wall: datetime) -> bool:
        """No member answered; True if the store was answering until now."""
        if self.lost_since is not None:
            return False
        self.lost_since = wall.astimezone(UTC)
        self._lost_at = now
        self.losses += 1
        self._ok.clear()
        self._lost.set()
        return True

    def mark_ok(self) -> bool:
        """A member answered; True if the store was lost until now."""
        if self.lost_since is None:
            return False
        self.lost_since = None
        self._lost.clear()
        self._ok.set()
        return True

    def lost_for(self, now: float) -> float:
        """Seconds the store has been lost at ``now`` (0 while it answers)."""
        return max(0.0, now - self._lost_at) if self.lost_since is not None else 0.0

    def problem(self) -> str | None:
        """What is wrong, for ``/readyz`` (None: nothing)."""
        if self.lost_since is None:
            return None
        since = self.lost_since.strftime("%Y-%m-%dT%H:%M:%SZ")
        return (
            f"the store ({self.where}) is unreachable since {since}: this replica refuses "
            "writes until it answers again"
        )

    def check(self) -> None:
        """Raise ``StoreError`` at once while the store is lost (before a write)."""
        problem = self.problem()
        if problem is not None:
            raise StoreError(
                f"{problem}; nothing was changed. Retry once /readyz answers 200, or send "
                "the change to another control-plane replica"
            )

    async def wait_lost(self) -> None:
        await self._lost.wait()

    async def wait_ok(self) -> None:
        await self._ok.wait()


class EtcdProbe:
    """Probes ``store``'s etcd every ``interval`` seconds and keeps ``health`` (run it as a
    task; it ends when the store is closed)."""

    def __init__(
        self,
        store: EtcdStore,
        health: StoreHealth | None = None,
        *,
        interval: float = PROBE_INTERVAL,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        if not interval > 0 or not timeout > 0:
            raise ConfigError(
                f"the etcd probe's interval and timeout must be > 0 s, got {interval:g} "
                f"and {timeout:g}"
            )
        self.store = store
        self.health = health or StoreHealth(f"etcd at {store.location}")
        self.interval = interval
        self.timeout = timeout

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.store.closed:
            answered = await self.probe()
            if self.store.closed:
                return
            if answered:
                if self.health.mark_ok():
                    log.warning("%s answers again: writes and xDS resume", self.health.where)
            elif self.health.mark_lost(loop.time(), datetime.now(UTC)):
                log.error(
                    "%s does not answer (no member within %.1fs): refusing writes",
                    self.health.where,
                    self.timeout,
                )
            await asyncio.sleep(self.interval)

    async def probe(self) -> bool:
        """Does any member answer a linearizable read of the identity key in time?"""
        request = rpc.RangeRequest(key=identity_key(self.store.keys.prefix), keys_only=True)
        return await self.store.connection.answers("Range", request, self.timeout)
