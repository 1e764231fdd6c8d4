"""Who holds each certificate this CA issued: serial -> the agent (or gateway) it was
issued to, with its identity and the root it chains to, kept in memory while the control
plane runs.

The xDS server asks it (``gossamer.xds.auth``) whether the host that presents a certificate
is the one that registered the proxy it subscribes as; root rotation asks it which
certificates from the old root are still in use, and ``gossamer ca status`` which one
expires first. A restarted control plane knows only what it issued since it started
(``started``): certificates issued before that are judged by their service alone until
their hosts renew them (at most one TTL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

#: the holder the control plane's own server certificates are recorded under
CONTROL_PLANE = "control-plane"


@dataclass(frozen=True, slots=True)
class Held:
    """One issued certificate."""

    serial: int
    holder: str
    not_after: datetime
    #: the SPIFFE id it names ("" when not recorded)
    spiffe_id: str = ""
    #: SHA-256 fingerprint (hex) of the root it chains to ("" when not recorded)
    root: str = ""
    issued_at: datetime | None = None


class Holders:
    """serial -> holder of every unexpired certificate issued since ``started``."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        #: when this record began: a certificate valid from before this may be unrecorded
        self.started = clock()
        self._held: dict[int, Held] = {}
        #: (holder, identity) -> serial of the newest certificate issued for it
        self._newest: dict[tuple[str, str], int] = {}
        self._prune_at = 64

    def record(
        self,
        serial: int,
        holder: str,
        not_after: datetime,
        *,
        spiffe_id: str = "",
        root: str = "",
    ) -> None:
        """``serial`` was issued to ``holder``, valid until ``not_after``; it replaces the
        last certificate issued to ``holder`` for ``spiffe_id``, whatever its trust domain
        (one issued before the Mesh changed it is replaced by one after)."""
        if len(self._held) >= self._prune_at:  # amortised: O(1) per certificate
            self._prune()
            self._prune_at = max(64, 2 * len(self._held))
        self._held[serial] = Held(serial, holder, not_after, spiffe_id, root, self._clock())
        if spiffe_id:
            self._newest[(holder, _path(spiffe_id))] = serial

    def _prune(self) -> None:
        now = self._clock()
        for old, held in list(self._held.items()):
            if held.not_after <= now:
                del self._held[old]
                key = (held.holder, _path(held.spiffe_id))
                if self._newest.get(key) == old:
                    del self._newest[key]

    def holder_of(self, serial: int) -> str | None:
        """To whom ``serial`` was issued, if this control plane issued it."""
        found = self._held.get(serial)
        return None if found is None else found.holder

    def get(self, serial: int) -> Held | None:
        return self._held.get(serial)

    def current(self) -> list[Held]:
        """The newest unexpired certificate of each holder and identity: those its host
        serves now (an older one was replaced when the host renewed), earliest expiry
        first."""
        now = self._clock()
        out = [self._held[s] for s in self._newest.values() if s in self._held]
        return sorted((h for h in out if h.not_after > now), key=lambda h: h.not_after)

    def __len__(self) -> int:
        return len(self._held)


def _path(spiffe_id: str) -> str:
    """``spiffe://<td>/ns/x/sa/y`` -> ``/ns/x/sa/y``: the identity within any domain."""
    rest = spiffe_id.removeprefix("spiffe://")
    return rest[rest.find("/") :] if "/" in rest else rest
