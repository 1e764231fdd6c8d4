"""``Debouncer``: when to publish after the model (or what proxies should get) changed.

Changes come in bursts (an apply of many resources, a watch batch, a round of ACKs that
make sidecars ready for mTLS); building every proxy's snapshot after each would waste the
control plane's time and the proxies' updates. A burst is published once it is quiet for
the Mesh's ``debounceMs``, but never later than a few debounce periods after its first
change, so a steady trickle of changes still reaches proxies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

#: a burst of changes is published at most this many debounce periods after its first change
MAX_DEBOUNCE_FACTOR = 5


class Debouncer:
    """Changes ``mark``-ed since the last publish, and since when."""

    def __init__(self) -> None:
        self._dirty = asyncio.Event()
        self._dirty_since: float | None = None

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
            # Wait for a quiet period, but never longer than a few debounce periods in all.
            while debounce > 0:
                self._dirty.clear()
                limit = first + debounce * MAX_DEBOUNCE_FACTOR - time.monotonic()
                try:
                    async with asyncio.timeout(min(debounce, max(limit, 0))):
                        await self._dirty.wait()
                except TimeoutError:
                    break
                if limit <= 0:
                    break
            self._dirty.clear()
            self._dirty_since = None
            await publish(first)
