"""``Debouncer``: when to publish after the model (or what proxies should get) changed.

Changes come in bursts (an apply of many resources, a watch batch, a round of ACKs that
make sidecars ready for mTLS); building every proxy's snapshot after each would waste the
control plane's time and the proxies' updates. The first change after a quiet period (no
publish ended within the Mesh's ``debounceMs``) is published at once: a lone change costs
no wait. A change that comes sooner waits until the burst is quiet for ``debounceMs``, but
never longer than a few debounce periods after its first change, so a steady trickle of
changes still reaches proxies. A change made while a publish runs counts from its end.
Publishes are thus at least ``debounceMs`` apart: a proxy gets at most one push per
period, however fast changes come, and a burst's applies get the loop between publishes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

#: a burst of changes is published at most this many debounce periods after its first change
MAX_DEBOUNCE_FACTOR = 5


class Debouncer:
    """Changes ``mark``-ed since the last publish, and since when."""

    def __init__(self) -> None:
        self._dirty = asyncio.Event()
        self._dirty_since: float | None = None
        #: when the last publish ended (-inf: none yet)
        self._published_at = -math.inf

    def published(self) -> None:
        """A publish ended (one of ``run``'s, or one made directly, as ``apply --wait``'s)."""
        self._published_at = time.monotonic()

    def mark(self) -> None:
        """Something proxies see changed: publish soon."""
        if self._dirty_since is None:
            self._dirty_since = time.monotonic()
        self._dirty.set()

    async def run(
        self, debounce_s: Callable[[], float], publish: Callable[[float], Awaitable[object]]
    ) -> None:
        """Until cancelled: after each burst of marks, ``publish(when the burst began)``;
        ``debounce_s()`` is the quiet period asked for (0: publish at once)."""
        while True:
            await self._dirty.wait()
            debounce = debounce_s()
            first = self._dirty_since or time.monotonic()
            since = max(first, self._published_at)
            # A burst under way (a publish ended within the period): wait for a quiet
            # period, but never longer than a few debounce periods in all.
            while debounce > 0 and since - self._published_at < debounce:
                self._dirty.clear()
                limit = since + debounce * MAX_DEBOUNCE_FACTOR - time.monotonic()
                try:
                    async with asyncio.timeout(min(debounce, max(limit, 0))):
                        await self._dirty.wait()
                except TimeoutError:
                    break
                if limit <= 0:
                    break
            self._dirty.clear()
            self._dirty_since = None
            try:
                await publish(first)
            finally:
                self.published()
