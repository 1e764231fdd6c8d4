"""What the xDS monitor keeps of one proxy's stream, and the proxy status read from it.

A :class:`StreamRecord` is kept per open stream (its protocol state, the newest snapshot
built for it, what its events left for the metrics); :meth:`StreamRecord.status` is what
``proxy-status``, the API and the UI see of it. A :class:`GoneRecord` keeps the last
status of a proxy whose stream closed (``gossamer.xds.monitor`` decides how long).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gossamer.types import ProxyIdentity
from gossamer.xds.resources import PUSH_ORDER, ResourceType
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import StreamState
from gossamer.xds.status import Nack, ProxyStatus, TypeStatus


@dataclass
class StreamRecord:
    proxy: ProxyIdentity
    state: StreamState
    protocol: str
    admin: str | None
    last_seen: float
    #: its node metadata says its Envoy gets secrets over SDS (``gossamer.node.SDS_KEY``)
    sds: bool = False
    #: its client proved over mTLS that it may subscribe as this proxy
    authenticated: bool = False
    #: the Envoy release its node announced (``gossamer.node.envoy_version``)
    envoy_version: str | None = None
    snapshot: Snapshot | None = None
    #: ``state.in_sync(snapshot)`` as of the stream's last event (read by the gauges)
    in_sync: bool = False
    synced_at_created: float | None = None
    #: per type, the ``created`` of the snapshot whose push latency of that type was measured
    type_synced_at: dict[ResourceType, float] = field(default_factory=dict)
    #: per type, the content of the last NACKed response logged (a retry is not logged again)
    nacked: dict[ResourceType, frozenset[tuple[str, str]]] = field(default_factory=dict)

    def status(self) -> ProxyStatus:
        """The proxy's status as this (open) stream tells it."""
        types = []
        for t in PUSH_ORDER:
            ts = self.state.types[t]
            nack = ts.nack
            types.append(
                TypeStatus(
                    t.short,
                    ts.sent_version,
                    ts.acked_version,
                    len(self.snapshot.of(t)) if self.snapshot else 0,
                    Nack(nack.version, nack.message, nack.at) if nack else None,
                )
            )
        p = self.proxy
        return ProxyStatus(
            p.node_id,
            p.kind,
            p.namespace,
            p.name,
            p.host,
            True,
            self.protocol,
            self.last_seen,
            self.snapshot is not None and self.state.in_sync(self.snapshot),
            self.admin,
            types,
            self.envoy_version,
        )


@dataclass
class GoneRecord:
    """A proxy whose stream closed: its last status, disconnected."""

    proxy: ProxyIdentity
    status: ProxyStatus
    #: monotonic time it disconnected
    at: float

    @classmethod
    def closed(cls, stream: StreamRecord, at: float) -> GoneRecord:
        """``stream`` closed at ``at`` (monotonic)."""
        return cls(stream.proxy, replace(stream.status(), connected=False, synced=False), at)
