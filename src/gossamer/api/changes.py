"""A long poll's news: what a ``GET ...?after=VERSION&wait=S`` waits on.

``changed()`` wakes every waiter (the document changed). ``release()`` is for a stopping
server: it wakes the waiters, and every poller from then on is answered at once with what
is current, rather than holding the server's shutdown for the rest of its ``wait`` (up to
a minute). A watcher inside the server (``poller=False``) wakes once and then waits for
real changes again: it is stopped by cancellation, and must not spin meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib


class Changes:
    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._released = False

    def changed(self) -> None:
        """Wake the current waiters; later ones wait for the next change."""
        self._event.set()
        self._event = asyncio.Event()

    def release(self) -> None:
        """The server is stopping: wake every waiter; pollers no longer wait."""
        self._released = True
        self.changed()

    async def next(self, wait_s: float, *, poller: bool = True) -> None:
        """Return on the next change, after ``wait_s`` seconds, or (a ``poller``) once
        released."""
        if poller and self._released:
            return
        event = self._event
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await event.wait()
