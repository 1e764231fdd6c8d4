"""Which resources one proxy holds as the control plane wants them: per resource, the
version of its newest snapshot against the version the proxy ACKed, and the NACK that
rejected it. ``gossamer describe`` shows it per proxy (``XdsMonitor.resource_acks``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gossamer.xds.resources import PUSH_ORDER, ResourceType
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import StreamState

AckState = Literal["acked", "pending", "rejected"]
#: which resources matter: (type, name) -> bool
Select = Callable[[ResourceType, str], bool]


@dataclass(frozen=True, slots=True)
class ResourceAck:
    #: ``clusters``, ``endpoints``, ``listeners``, ``extension_configs``, ``routes``
    type: str
    name: str
    #: the version the control plane wants the proxy to hold (None: to remove it)
    wanted: str | None
    #: the version the proxy ACKed (None: it never ACKed this resource)
    acked: str | None
    #: the error of the NACK rejecting a response that carried it
    nack: str | None = None

    @property
    def state(self) -> AckState:
        if self.nack is not None:
            return "rejected"
        return "acked" if self.wanted == self.acked else "pending"


def resource_acks(state: StreamState, snap: Snapshot | None, select: Select) -> list[ResourceAck]:
    """The resources ``select`` picks from what the proxy should hold (``snap``) or holds
    (what it ACKed), in push order then by name."""
    out: list[ResourceAck] = []
    for t in PUSH_ORDER:
        ts = state.types[t]
        wanted = {n: v.version for n, v in (snap.of(t) if snap else {}).items() if select(t, n)}
        known = {n: v for n, v in ts.known.items() if select(t, n)}
        for name in sorted(wanted.keys() | known.keys()):
            want = wanted.get(name)
            nack = ts.nack
            rejected = nack is not None and ((name, want or "") in nack.content or name in ts.doubt)
            out.append(
                ResourceAck(
                    t.short,
                    name,
                    want,
                    known.get(name),
                    nack.message if rejected and nack is not None else None,
                )
            )
    return out
