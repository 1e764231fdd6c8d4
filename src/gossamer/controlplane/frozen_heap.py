"""Keeping Python's cyclic collector from walking what the plane keeps.

A full collection walks every tracked object while holding the GIL, in whichever thread
triggers it. With a 1,000-service model and 1,000 proxies' snapshots that is hundreds of
thousands of objects: 55-60 ms of a stopped event loop, landing in whichever push round
allocated past the collector's threshold (``bench/xds_scale.py``'s endpoint-change p99).

What a publish round builds (snapshots, their resources, the translation caches) lives
until a later round replaces it, and is freed by reference counting then: the collector
need not walk it. So after each round (and each greeting of new proxies) the plane
freezes what is alive (``gc.freeze``: a move of lists, O(1)), and the collector's walks
cover only what was made since; during a round it does not collect at all (``paused``).
Cyclic garbage frozen meanwhile (a closed stream's exception and frames, say) is kept
until the next full collection: after a full round that pruned large caches, or
``COLLECT_EVERY`` after the last one at the latest (a full collection holds the GIL ~0.2 s
at 1k services and 1,000 proxies, as collections did before, but at most that often).
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator

#: a prune keeping at least this many cache entries collects everything before freezing (a
#: small mesh's prunes are frequent, and its cyclic garbage is small)
FREEZE_FROM = 20_000
#: at most this long (s) between full collections
COLLECT_EVERY = 600.0


class FrozenHeap:
    """When to freeze what is alive, and when to collect everything first. Off until the
    server turns it on (``enabled``): freezing is a setting of the whole process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.enabled = False
        self._clock = clock
        self._collected_at = clock()
        #: full collections made (for tests)
        self.collections = 0

    def pruned(self, live: int) -> None:
        """After a round that pruned the caches to ``live`` entries: a full collection if
        they are large (unfreezing first lets cycles among what the prune dropped be
        collected), then freeze what is alive."""
        if self.enabled and live >= FREEZE_FROM:
            self._collect()
        self.built()

    def built(self) -> None:
        """After any round or greeting: freeze what it built; collect everything first if
        the last full collection is ``COLLECT_EVERY`` old."""
        if not self.enabled:
            return
        if self._clock() - self._collected_at >= COLLECT_EVERY:
            self._collect()
        gc.freeze()

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No automatic collection meanwhile: a round's young objects live until replaced
        and are frozen at its end, so walking them meanwhile (1-7 ms per young collection
        at 1,000 proxies, over new snapshots' resource maps) is wasted. (A caller pausing
        inside another's pause leaves the collector as the outer one set it.)"""
        if not self.enabled or not gc.isenabled():
            yield
            return
        gc.disable()
        try:
            yield
        finally:
            gc.enable()

    def _collect(self) -> None:
        gc.unfreeze()
        gc.collect()
        self._collected_at = self._clock()
        self.collections += 1
