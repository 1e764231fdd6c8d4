"""Introspection of xDS streams: proxy status, metrics, and waiting for ACKs.

The server reports stream events here; the API, CLI and ``apply --wait`` read from here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gossamer.controlplane.status import Nack, ProxyStatus, TypeStatus
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import PUSH_ORDER
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import Outgoing, RequestOutcome, StreamState


@dataclass
class _Stream:
    proxy: ProxyIdentity
    state: StreamState
    protocol: str
    admin: str | None
    last_seen: float
    snapshot: Snapshot | None = None
    synced_at_created: float | None = None


class XdsMonitor:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self._streams: dict[str, _Stream] = {}
        self._gone: dict[str, ProxyStatus] = {}
        #: set (and replaced) whenever any stream makes progress
        self._progress = asyncio.Event()
        reg = registry or CollectorRegistry()
        self.connected = Gauge(
            "gossamer_xds_connected_proxies", "Proxies with an open ADS stream", registry=reg
        )
        self.pushes = Counter("gossamer_xds_pushes", "xDS responses sent", ["type"], registry=reg)
        self.nacks = Counter(
            "gossamer_xds_nacks", "xDS responses rejected by Envoy", ["type"], registry=reg
        )
        self.push_latency = Histogram(
            "gossamer_xds_push_latency_seconds",
            "From a change seen by the control plane to the proxy ACKing all of it",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=reg,
        )

    # -- events from streams ----------------------------------------------------------------

    def opened(
        self, key: str, proxy: ProxyIdentity, state: StreamState, protocol: str, admin: str | None
    ) -> None:
        self._streams[key] = _Stream(proxy, state, protocol, admin, time.time())
        self._gone.pop(proxy.node_id, None)
        self.connected.set(len({s.proxy.node_id for s in self._streams.values()}))

    def closed(self, key: str) -> None:
        stream = self._streams.pop(key, None)
        if stream is not None:
            self._gone[stream.proxy.node_id] = _disconnected(self._status(stream))
        self.connected.set(len({s.proxy.node_id for s in self._streams.values()}))
        self._notify()

    def request(self, key: str, outcome: RequestOutcome) -> None:
        stream = self._streams[key]
        stream.last_seen = time.time()
        if outcome.kind == "nack":
            self.nacks.labels(outcome.type.short).inc()
        if outcome.kind in ("ack", "nack", "initial"):
            self._check_synced(stream)
            self._notify()

    def sent(self, key: str, out: Outgoing) -> None:
        self.pushes.labels(out.type.short).inc()

    def snapshot(self, key: str, snap: Snapshot) -> None:
        stream = self._streams[key]
        stream.snapshot = snap
        self._check_synced(stream)
        self._notify()

    def _check_synced(self, stream: _Stream) -> None:
        snap = stream.snapshot
        if snap is None or not stream.state.in_sync(snap):
            return
        if snap.created and stream.synced_at_created != snap.created:
            stream.synced_at_created = snap.created
            self.push_latency.observe(max(0.0, time.monotonic() - snap.created))

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- readers -------------------------------------------------------------------------------

    def synced(self, node_id: str, snap: Snapshot) -> bool:
        return any(
            s.proxy.node_id == node_id and s.snapshot is snap and s.state.in_sync(snap)
            for s in self._streams.values()
        )

    async def wait_synced(
        self, targets: Iterable[tuple[str, Snapshot]], within: float
    ) -> list[str]:
        """Wait until every (node, snapshot) pair is ACKed; return the node ids still behind."""
        pending = dict(targets)
        deadline = asyncio.get_running_loop().time() + within

        def behind() -> list[str]:
            return [n for n, s in pending.items() if not self.synced(n, s)]

        loop = asyncio.get_running_loop()
        while behind() and (rest := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._progress.wait(), rest)
            except TimeoutError:
                break
        return behind()

    def statuses(self) -> list[ProxyStatus]:
        live = {s.proxy.node_id: self._status(s) for s in self._streams.values()}
        gone = {k: v for k, v in self._gone.items() if k not in live}
        return sorted([*live.values(), *gone.values()], key=lambda p: p.node_id)

    def admin_address(self, node_id: str) -> str | None:
        return next((s.admin for s in self._streams.values() if s.proxy.node_id == node_id), None)

    def _status(self, s: _Stream) -> ProxyStatus:
        types = []
        for t in PUSH_ORDER:
            ts = s.state.types[t]
            nack = ts.nack
            types.append(
                TypeStatus(
                    t.short,
                    ts.sent_version,
                    ts.acked_version,
                    len(s.snapshot.of(t)) if s.snapshot else 0,
                    Nack(nack.version, nack.message, nack.at) if nack else None,
                )
            )
        p = s.proxy
        return ProxyStatus(
            p.node_id,
            p.kind,
            p.namespace,
            p.name,
            p.host,
            True,
            s.protocol,
            s.last_seen,
            s.snapshot is not None and s.state.in_sync(s.snapshot),
            s.admin,
            types,
        )


def _disconnected(status: ProxyStatus) -> ProxyStatus:
    return ProxyStatus(
        status.node_id,
        status.kind,
        status.namespace,
        status.name,
        status.host,
        False,
        status.protocol,
        status.last_seen,
        False,
        status.admin_address,
        status.types,
    )
