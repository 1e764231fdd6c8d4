"""Who holds each certificate this CA issued: serial -> the agent (or gateway) it was
issued to, kept in memory while the control plane runs.

The xDS server asks it (``gossamer.xds.auth``) whether the host that presents a certificate
is the one that registered the proxy it subscribes as. A restarted control plane knows
only what it issued since it started (``started``): certificates issued before that are
judged by their service alone until their hosts renew them (at most one TTL).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime


class Holders:
    """serial -> holder of every unexpired certificate issued since ``started``."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        #: when this record began: a certificate valid from before this may be unrecorded
        self.started = clock()
        self._held: dict[int, tuple[str, datetime]] = {}
        self._prune_at = 64

    def record(self, serial: int, holder: str, not_after: datetime) -> None:
        """``serial`` was issued to ``holder``, valid until ``not_after``."""
        if len(self._held) >= self._prune_at:  # amortised: O(1) per certificate
            now = self._clock()
            for old, (_, expires) in list(self._held.items()):
                if expires <= now:
                    del self._held[old]
            self._prune_at = max(64, 2 * len(self._held))
        self._held[serial] = (holder, not_after)

    def holder_of(self, serial: int) -> str | None:
        """To whom ``serial`` was issued, if this control plane issued it."""
        found = self._held.get(serial)
        return None if found is None else found[0]

    def __len__(self) -> int:
        return len(self._held)
