"""Introspection of xDS streams: proxy status, metrics, and waiting for ACKs.

The server reports stream events here; the API, CLI and ``apply --wait`` read from here.
Streams opening and closing are passed on per host (the liveness rule listens). A proxy
that disconnected keeps its status entry while its Workload or Gateway exists; one nobody
registered is forgotten ``forget_after`` seconds after it left, so a flood of made-up node
ids cannot grow the control plane's memory for good.

Status and ACKs are kept per stream. When a node id has an authenticated stream (mTLS, its
certificate checked against what its agent registered: ``gossamer.xds.auth``), only its
authenticated streams count for ``proxy-status``, ``apply --wait`` and mTLS readiness:
another Envoy claiming the same node id cannot ACK or NACK in its name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gossamer.errors import ConfigError
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import PUSH_ORDER, ResourceType
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import Outgoing, RequestOutcome, StreamState
from gossamer.xds.status import Nack, ProxyStatus, TypeStatus

log = logging.getLogger(__name__)

#: a disconnected proxy with no Workload/Gateway of its own is forgotten after this long (s)
FORGET_AFTER = 600.0

#: is there a Workload (sidecar) or Gateway (gateway) for this proxy?
Registered = Callable[[ProxyIdentity], bool]
#: told (host, True) when a proxy of ``host`` opens a stream and (host, False) when it closes
HostListener = Callable[[str, bool], None]
#: told the node ids of connected proxies that get secrets over SDS, whenever that changes
SdsListener = Callable[[frozenset[str]], None]


@dataclass
class _Stream:
    proxy: ProxyIdentity
    state: StreamState
    protocol: str
    admin: str | None
    last_seen: float
    #: its node metadata says its Envoy gets secrets over SDS (``gossamer.node.SDS_KEY``)
    sds: bool = False
    #: its client proved over mTLS that it may subscribe as this proxy
    authenticated: bool = False
    snapshot: Snapshot | None = None
    synced_at_created: float | None = None
    #: per type, the content of the last NACKed response logged (a retry is not logged again)
    nacked: dict[ResourceType, frozenset[tuple[str, str]]] = field(default_factory=dict)


@dataclass
class _Gone:
    proxy: ProxyIdentity
    status: ProxyStatus
    #: monotonic time it disconnected
    at: float


class XdsMonitor:
    def __init__(
        self,
        metrics: CollectorRegistry | None = None,
        *,
        forget_after: float = FORGET_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not forget_after >= 0:
            raise ConfigError(
                f"--forget-proxies-after must be >= 0 s (e.g. 600), got {forget_after:g}"
            )
        self._streams: dict[str, _Stream] = {}
        self._gone: dict[str, _Gone] = {}
        self.forget_after = forget_after
        self._clock = clock
        self._registered: Registered = lambda _: False
        self._host_listeners: list[HostListener] = []
        self._sds_listeners: list[SdsListener] = []
        self._sweep: asyncio.TimerHandle | None = None
        #: set (and replaced) whenever any stream makes progress
        self._progress = asyncio.Event()
        reg = metrics or CollectorRegistry()
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

    # -- wiring ------------------------------------------------------------------------------

    def set_registered(self, registered: Registered) -> None:
        """How to tell a registered proxy (kept when gone) from an unknown one (forgotten)."""
        self._registered = registered

    def on_host_streams(self, listener: HostListener) -> None:
        """Tell ``listener`` of every stream of a proxy with a host opening and closing."""
        self._host_listeners.append(listener)

    def on_sds_capable(self, listener: SdsListener) -> None:
        """Tell ``listener`` the connected proxies that get secrets over SDS whenever that
        set changes (synchronously, before the stream is attached to the cache)."""
        self._sds_listeners.append(listener)

    # -- events from streams ----------------------------------------------------------------

    def opened(
        self,
        key: str,
        proxy: ProxyIdentity,
        state: StreamState,
        protocol: str,
        admin: str | None,
        *,
        sds: bool = False,
        authenticated: bool = False,
    ) -> None:
        """``sds``: the proxy's node metadata says its Envoy gets secrets over SDS;
        ``authenticated``: its client proved it may be this proxy (mTLS)."""
        before = self.sds_capable() if self._sds_listeners else frozenset()
        self._streams[key] = _Stream(
            proxy, state, protocol, admin, time.time(), sds, authenticated=authenticated
        )
        log.info(
            "xDS stream opened: %s (%s%s)",
            proxy.node_id,
            protocol,
            ", mTLS" if authenticated else "",
        )
        self._gone.pop(proxy.node_id, None)
        self.connected.set(len({s.proxy.node_id for s in self._streams.values()}))
        self._tell_host(proxy, True)
        self._tell_sds(before)

    def closed(self, key: str) -> None:
        before = self.sds_capable() if self._sds_listeners else frozenset()
        stream = self._streams.pop(key, None)
        if stream is not None:
            log.info("xDS stream closed: %s (%s)", stream.proxy.node_id, stream.protocol)
            status = _disconnected(self._status(stream))
            self._gone[stream.proxy.node_id] = _Gone(stream.proxy, status, self._clock())
            self._schedule_forget()
            self._tell_host(stream.proxy, False)
        self.connected.set(len({s.proxy.node_id for s in self._streams.values()}))
        self._tell_sds(before)
        self._notify()

    def _tell_sds(self, before: frozenset[str]) -> None:
        if self._sds_listeners and (now := self.sds_capable()) != before:
            for listener in self._sds_listeners:
                listener(now)

    def _tell_host(self, proxy: ProxyIdentity, opened: bool) -> None:
        if proxy.host is not None:
            for listener in self._host_listeners:
                listener(proxy.host, opened)

    # -- forgetting unknown proxies ------------------------------------------------------------

    def forget_gone(self) -> float | None:
        """Forget disconnected, unregistered proxies gone ``forget_after`` or longer; return
        when the next of those still remembered is due (monotonic), None if none is."""
        now = self._clock()
        due: float | None = None
        for node_id, gone in list(self._gone.items()):
            if self._registered(gone.proxy):
                continue
            expires = gone.at + self.forget_after
            if expires <= now:
                del self._gone[node_id]
            elif due is None or expires < due:
                due = expires
        return due

    def _schedule_forget(self, delay: float | None = None) -> None:
        """One timer at a time, none when nothing waits to be forgotten."""
        if self._sweep is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): ``statuses`` still forgets
        self._sweep = loop.call_later(self.forget_after if delay is None else delay, self._swept)

    def _swept(self) -> None:
        self._sweep = None
        due = self.forget_gone()
        if due is not None:
            self._schedule_forget(max(0.0, due - self._clock()))

    def close(self) -> None:
        """Cancel the pending sweep (at shutdown)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None

    # -- more events from streams -------------------------------------------------------------

    def request(self, key: str, outcome: RequestOutcome) -> None:
        stream = self._streams[key]
        stream.last_seen = time.time()
        if outcome.kind == "nack":
            self.nacks.labels(outcome.type.short).inc()
            self._log_nack(stream, outcome)
        elif outcome.kind == "ack":
            stream.nacked.pop(outcome.type, None)
        if outcome.kind in ("ack", "nack", "initial"):
            self._check_synced(stream)
            self._notify()

    def _log_nack(self, stream: _Stream, outcome: RequestOutcome) -> None:
        """Log a NACK once per rejected content (not each back-off retry of it)."""
        nack = outcome.nack
        if nack is None or stream.nacked.get(outcome.type) == nack.content:
            return
        stream.nacked[outcome.type] = nack.content
        log.warning(
            "%s rejected %s version %s: %s",
            stream.proxy.node_id,
            outcome.type.short,
            nack.version,
            nack.message,
        )

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

    def progress_event(self) -> asyncio.Event:
        """An event set at the next progress of any stream (an ACK or NACK, a new snapshot,
        a close). Take it *before* checking what you wait for, then wait on it: nothing
        that happens in between is missed."""
        return self._progress

    def has_authenticated(self, node_id: str) -> bool:
        """Has ``node_id`` an open authenticated stream?"""
        return any(s.authenticated and s.proxy.node_id == node_id for s in self._streams.values())

    def _counted(self) -> list[_Stream]:
        """The streams that speak for their proxy, oldest first: of a node id with an
        authenticated stream, only its authenticated streams."""
        streams = list(self._streams.values())
        trusted = {s.proxy.node_id for s in streams if s.authenticated}
        return [s for s in streams if s.authenticated or s.proxy.node_id not in trusted]

    def synced(self, node_id: str, snap: Snapshot) -> bool:
        return any(
            s.proxy.node_id == node_id and s.snapshot is snap and s.state.in_sync(snap)
            for s in self._counted()
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
                async with asyncio.timeout(rest):
                    await self._progress.wait()
            except TimeoutError:
                break
        return behind()

    def statuses(self) -> list[ProxyStatus]:
        live = {s.proxy.node_id: self._status(s) for s in self._counted()}
        self.forget_gone()
        gone = {k: v.status for k, v in self._gone.items() if k not in live}
        return sorted([*live.values(), *gone.values()], key=lambda p: p.node_id)

    def sds_capable(self) -> frozenset[str]:
        """Connected proxies whose newest stream says their Envoy gets secrets over SDS."""
        newest = {s.proxy.node_id: s.sds for s in self._counted()}
        return frozenset(n for n, sds in newest.items() if sds)

    def admin_address(self, node_id: str) -> str | None:
        return next((s.admin for s in self._counted() if s.proxy.node_id == node_id), None)

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
