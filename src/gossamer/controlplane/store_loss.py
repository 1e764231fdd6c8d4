"""What a replica does when its store stops answering (docs/store.md, "When etcd is lost").

At once (``StoreHealth``, kept by the store's probe): writes are refused and ``/readyz``
answers 503. After ``grace`` seconds still lost, ``StoreLossGuard`` closes every xDS
stream with UNAVAILABLE and refuses new ones, so each Envoy moves to another replica, or,
with none, keeps its last configuration (Envoy never drops what it holds when its control
plane goes away). When the store answers again, streams are accepted again and the Envoys
reconnect (on their own retry backoff) and get what changed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from gossamer.errors import ConfigError
from gossamer.store.etcd_health import StoreHealth

log = logging.getLogger(__name__)

#: seconds of store loss before the xDS streams are closed (``--store-loss-grace``)
DEFAULT_GRACE = 10.0


def check_grace(grace: float) -> float:
    if not grace >= 0:
        raise ConfigError(
            f"--store-loss-grace must be >= 0 s (seconds of store loss before the xDS "
            f"streams are closed; default {DEFAULT_GRACE:g}), got {grace:g}"
        )
    return grace


class StoreLossGuard:
    """Runs as a task: ``close(reason)`` after ``grace`` seconds of loss, ``reopen()`` once
    the store answers again (``XdsServer.refuse_streams`` / ``accept_streams``)."""

    def __init__(
        self,
        health: StoreHealth,
        grace: float,
        close: Callable[[str], None],
        reopen: Callable[[], None],
    ) -> None:
        self.health = health
        self.grace = check_grace(grace)
        self._close = close
        self._reopen = reopen
        #: times the streams were closed
        self.closings = 0

    async def run(self) -> None:
        while True:
            await self.health.wait_lost()
            try:
                async with asyncio.timeout(self.grace):
                    await self.health.wait_ok()
                continue  # back within the grace: the streams stay
            except TimeoutError:
                pass
            reason = self.reason()
            log.error("closing xDS streams: %s", reason)
            self.closings += 1
            self._close(reason)
            await self.health.wait_ok()
            log.warning("%s answers again: serving xDS again", self.health.where)
            self._reopen()

    def reason(self) -> str:
        """The UNAVAILABLE message each closed or refused stream gets."""
        problem = self.health.problem() or f"the store ({self.health.where}) is unreachable"
        return (
            f"{problem}; after {self.grace:g}s this replica serves no xDS until it answers: "
            "connect to another control-plane replica"
        )
