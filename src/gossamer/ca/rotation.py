"""Root rotation as a state machine without I/O: what each phase waits on, and when it may
move on (docs/security.md, "Rotating the root").

1. ``trusting``: the new root is in the trust bundle next to the old one; nothing is issued
   from it. Moves on once every proxy's Envoy ACKed that bundle over SDS and every host
   holding a certificate renewed it since (the answer carries the bundle: a host must
   trust the new root before the control plane's own certificate comes from it, or it
   cannot verify the API again; one whose Envoy is not connected is not among the
   proxies).
2. ``issuing``: certificates come from the new root; hosts renew. Moves on once every proxy
   ACKed a certificate from the new root (and the bundle), and no certificate from the old
   root is still current (the CA's ``Holders`` record; one issued before this control plane
   started could be, until one TTL after its start).
3. ``retiring``: the old root is out of the bundle. Moves on once every proxy ACKed that.
4. ``done``.

"Every proxy" is every connected proxy whose Envoy gets secrets over SDS; the driver
(``gossamer.server.ca``) observes them and applies the moves to the CA.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from gossamer.ca.holders import CONTROL_PLANE, Held
from gossamer.errors import ConflictError


class Phase(StrEnum):
    TRUSTING = "trusting"
    ISSUING = "issuing"
    RETIRING = "retiring"
    DONE = "done"


_NEXT = {Phase.TRUSTING: Phase.ISSUING, Phase.ISSUING: Phase.RETIRING, Phase.RETIRING: Phase.DONE}


@dataclass(frozen=True)
class RotationState:
    """Where a rotation is; persisted in the CA directory (``rotation.json``)."""

    phase: Phase
    #: SHA-256 fingerprints (hex) of the root being replaced and of its successor
    old_root: str
    new_root: str
    started: datetime
    #: when ``phase`` began (for ``done``: when the rotation finished)
    since: datetime

    def to_json(self) -> dict[str, str]:
        return {
            "phase": self.phase.value,
            "oldRoot": self.old_root,
            "newRoot": self.new_root,
            "started": self.started.isoformat(),
            "since": self.since.isoformat(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RotationState:
        """``KeyError``/``ValueError`` for a malformed record."""
        return cls(
            Phase(str(data["phase"])),
            str(data["oldRoot"]),
            str(data["newRoot"]),
            datetime.fromisoformat(str(data["started"])),
            datetime.fromisoformat(str(data["since"])),
        )

    @property
    def active(self) -> bool:
        return self.phase is not Phase.DONE


@dataclass(frozen=True)
class ProxySecrets:
    """What one proxy's Envoy ACKed over SDS: the ``identity`` serial (hex) and the
    ``trust-bundle`` version (None: nothing ACKed)."""

    identity: str | None
    bundle: str | None


@dataclass(frozen=True)
class Observation:
    now: datetime
    #: the version of the trust bundle the CA hands out now
    bundle_version: str
    #: node id -> what it ACKed, for every proxy that must follow
    proxies: Mapping[str, ProxySecrets]
    #: the root (fingerprint) a serial this CA issued chains to, None if unknown
    root_of: Callable[[int], str | None]
    #: the current certificate of each holder and identity (``Holders.current``)
    current: Sequence[Held]
    #: certificates issued before the control plane started may be in use until then
    unrecorded_until: datetime | None = None


@dataclass(frozen=True)
class Progress:
    phase: Phase
    #: one line per thing the phase waits on (empty: it may move on)
    waiting: tuple[str, ...]

    @property
    def ready(self) -> bool:
        return not self.waiting


class RotationMachine:
    """The rotation's state, and what an observation says about it."""

    def __init__(self, state: RotationState | None = None) -> None:
        self.state = state
        self.progress: Progress | None = None

    @property
    def active(self) -> bool:
        return self.state is not None and self.state.active

    def start(self, old_root: str, new_root: str, now: datetime) -> RotationState:
        """The first phase of a new rotation (``ConflictError`` while one is under way)."""
        if self.state is not None and self.state.active:
            raise ConflictError(
                f"a root rotation is already under way (phase {self.state.phase}, started "
                f"{self.state.started:%Y-%m-%d %H:%M:%S}): follow it with `gossamer ca "
                "rotate` or `gossamer ca status`; it finishes on its own"
            )
        return RotationState(Phase.TRUSTING, old_root, new_root, now, now)

    def observe(self, obs: Observation) -> RotationState | None:
        """Record what the current phase waits on; the next state if it may move on."""
        state = self.state
        if state is None or not state.active:
            self.progress = None
            return None
        self.progress = Progress(state.phase, tuple(waiting_on(state, obs)))
        if not self.progress.ready:
            return None
        return replace(state, phase=_NEXT[state.phase], since=obs.now)


def waiting_on(state: RotationState, obs: Observation) -> list[str]:
    """Lines naming what ``state``'s phase still waits on."""
    if state.phase is Phase.TRUSTING:
        lacking = [n for n, p in obs.proxies.items() if p.bundle != obs.bundle_version]
        lines = _proxies_line(lacking, obs, "have the trust bundle with both roots")
        before = [
            h
            for h in obs.current
            if h.holder != CONTROL_PLANE and (h.issued_at is None or h.issued_at < state.since)
        ]
        if before:
            lines.append(
                f"{len(before)} certificate{'s' if len(before) != 1 else ''} issued before "
                f"the new root was trusted, whose hosts have not renewed (they do at their "
                f"next heartbeat, and get the bundle with both roots): {_held(before)}"
            )
        return lines
    if state.phase is Phase.RETIRING:
        lacking = [n for n, p in obs.proxies.items() if p.bundle != obs.bundle_version]
        return _proxies_line(lacking, obs, "have the trust bundle without the old root")
    if state.phase is not Phase.ISSUING:
        return []
    lacking = [n for n, p in obs.proxies.items() if not _moved(p, state, obs)]
    lines = _proxies_line(lacking, obs, "serve a certificate from the new root")
    old = [h for h in obs.current if h.root == state.old_root and h.not_after > obs.now]
    if old:
        lines.append(
            f"{len(old)} certificate{'s' if len(old) != 1 else ''} from the old root still "
            f"current: {_held(old)}"
        )
    if obs.unrecorded_until is not None and obs.now < obs.unrecorded_until:
        lines.append(
            "certificates issued before this control plane started may still chain to the "
            f"old root: waiting until {obs.unrecorded_until:%Y-%m-%d %H:%M:%S} (one "
            "certificateTTL after the start), when the last of them expires"
        )
    return lines


def _held(certificates: Sequence[Held]) -> str:
    shown = ", ".join(
        f"{h.spiffe_id or 'serial ' + format(h.serial, 'x')} (held by {h.holder}, "
        f"expires {h.not_after:%H:%M:%S})"
        for h in certificates[:5]
    )
    more = len(certificates) - 5
    return shown + (f" and {more} more" if more > 0 else "")


def _moved(p: ProxySecrets, state: RotationState, obs: Observation) -> bool:
    if p.bundle != obs.bundle_version or p.identity is None:
        return False
    try:
        serial = int(p.identity, 16)
    except ValueError:
        return False
    return obs.root_of(serial) == state.new_root


def _proxies_line(lacking: list[str], obs: Observation, what: str) -> list[str]:
    if not lacking:
        return []
    total = len(obs.proxies)
    names = sorted(lacking)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return [f"{total - len(lacking)} of {total} proxies {what}: waiting on {shown}"]
