"""Introspection of xDS streams: proxy status, metrics, and waiting for ACKs.

The server reports stream events here; the API, CLI and ``apply --wait`` read from here.
Streams opening and closing are passed on per host (the liveness rule listens). A proxy
that disconnected keeps its status entry while its Workload or Gateway exists; one nobody
registered is forgotten ``forget_after`` seconds after it left, so a flood of made-up node
ids cannot grow the control plane's memory for good.

Status and ACKs are kept per stream (``gossamer.xds.stream_record``: a record each, which
the proxy's status is read from). When a node id has an authenticated stream (mTLS, its
certificate checked against what its agent registered: ``gossamer.xds.auth``), only its
authenticated streams count for ``proxy-status``, ``apply --wait`` and mTLS readiness:
another Envoy claiming the same node id cannot ACK or NACK in its name.

Metrics (``gossamer.xds.metrics``): each stream's in-sync flag follows its own events at
the cost of what changed; the proxy gauges read the flags when scraped. Push latency is
measured per type (to the ACK completing that type) and for all types at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry

from gossamer.errors import ConfigError
from gossamer.types import ProxyIdentity
from gossamer.xds.acks import ResourceAck, Select, resource_acks
from gossamer.xds.metrics import ProxyCounts, XdsMetrics
from gossamer.xds.resources import ResourceType
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import Outgoing, RequestOutcome, StreamState
from gossamer.xds.status import ProxyStatus
from gossamer.xds.stream_record import GoneRecord, StreamRecord

log = logging.getLogger(__name__)

#: a disconnected proxy with no Workload/Gateway of its own is forgotten after this long (s)
FORGET_AFTER = 600.0

#: is there a Workload (sidecar) or Gateway (gateway) for this proxy?
Registered = Callable[[ProxyIdentity], bool]
#: told (host, True) when a proxy of ``host`` opens a stream and (host, False) when it closes
HostListener = Callable[[str, bool], None]
#: told the node ids of connected proxies that get secrets over SDS, whenever that changes
SdsListener = Callable[[frozenset[str]], None]


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
        self._streams: dict[str, StreamRecord] = {}
        #: the same streams by node id, oldest first: per-proxy questions (``synced``, asked
        #: for every proxy in a readiness pass) must not read every stream
        self._by_node: dict[str, dict[str, StreamRecord]] = {}
        self._gone: dict[str, GoneRecord] = {}
        #: node ids whose newest counted stream is SDS-capable (``sds_capable``), kept per
        #: stream opened and closed: recomputing it over every stream made a connect storm
        #: of N proxies O(N^2)
        self._sds: set[str] = set()
        self.forget_after = forget_after
        self._clock = clock
        self._registered: Registered = lambda _: False
        self._host_listeners: list[HostListener] = []
        self._sds_listeners: list[SdsListener] = []
        self._sweep: asyncio.TimerHandle | None = None
        #: set (and replaced) whenever any stream makes progress
        self._progress = asyncio.Event()
        self.metrics = XdsMetrics(metrics or CollectorRegistry(), self.counts)
        self.pushes = self.metrics.pushes

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
        envoy_version: str | None = None,
    ) -> None:
        """``sds``: the proxy's node metadata says its Envoy gets secrets over SDS;
        ``authenticated``: its client proved it may be this proxy (mTLS);
        ``envoy_version``: the Envoy release its node announced."""
        stream = StreamRecord(
            proxy,
            state,
            protocol,
            admin,
            time.time(),
            sds,
            authenticated=authenticated,
            envoy_version=envoy_version,
        )
        self._streams[key] = stream
        self._by_node.setdefault(proxy.node_id, {})[key] = stream
        log.info(
            "xDS stream opened: %s (%s%s)",
            proxy.node_id,
            protocol,
            ", mTLS" if authenticated else "",
        )
        self._gone.pop(proxy.node_id, None)
        self.metrics.connected.set(len(self._by_node))
        self._tell_host(proxy, True)
        self._update_sds(proxy.node_id)

    def closed(self, key: str) -> None:
        stream = self._streams.pop(key, None)
        if stream is not None:
            node = self._by_node[stream.proxy.node_id]
            del node[key]
            if not node:
                del self._by_node[stream.proxy.node_id]
            log.info("xDS stream closed: %s (%s)", stream.proxy.node_id, stream.protocol)
            self._gone[stream.proxy.node_id] = GoneRecord.closed(stream, self._clock())
            self._schedule_forget()
            self._tell_host(stream.proxy, False)
            self._update_sds(stream.proxy.node_id)
        self.metrics.connected.set(len(self._by_node))
        self._notify()

    def _update_sds(self, node_id: str) -> None:
        """After a stream of ``node_id`` opened or closed: is the node SDS-capable now (its
        newest counted stream says so)? Tell the listeners if that changed."""
        streams = self._counted_of(node_id)
        now = bool(streams) and streams[-1].sds
        if now == (node_id in self._sds):
            return
        if now:
            self._sds.add(node_id)
        else:
            self._sds.discard(node_id)
        if self._sds_listeners:
            capable = frozenset(self._sds)
            for listener in self._sds_listeners:
                listener(capable)

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
            self.metrics.nacks_of[outcome.type].inc()
            self._log_nack(stream, outcome)
        elif outcome.kind == "ack":
            stream.nacked.pop(outcome.type, None)
            self._check_type_synced(stream, outcome.type)
        # (any request may change what the proxy needs: a subscription, a NACK)
        self._check_synced(stream)
        if outcome.kind in ("ack", "nack", "initial"):
            self._notify()

    def _log_nack(self, stream: StreamRecord, outcome: RequestOutcome) -> None:
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
        self.metrics.pushes_of[out.type].inc()
        stream = self._streams.get(key)
        if stream is not None:
            stream.in_sync = False  # (a response is in flight until it is answered)

    def snapshot(self, key: str, snap: Snapshot) -> None:
        stream = self._streams[key]
        stream.snapshot = snap
        self._check_synced(stream)
        self._notify()

    def _check_synced(self, stream: StreamRecord) -> None:
        snap = stream.snapshot
        stream.in_sync = snap is not None and stream.state.in_sync(snap)
        if snap is None or not stream.in_sync:
            return
        if snap.created and stream.synced_at_created != snap.created:
            stream.synced_at_created = snap.created
            self.metrics.sync_latency.observe(max(0.0, time.monotonic() - snap.created))

    def _check_type_synced(self, stream: StreamRecord, rtype: ResourceType) -> None:
        """After an ACK of ``rtype``: once the proxy holds all of that type of its newest
        snapshot, that type's push latency, once per change (a type not pushed for it is
        not measured)."""
        snap = stream.snapshot
        if snap is None or not snap.created or stream.type_synced_at.get(rtype) == snap.created:
            return
        if stream.state.type_in_sync(rtype, snap):
            stream.type_synced_at[rtype] = snap.created
            latency = max(0.0, time.monotonic() - snap.created)
            self.metrics.push_latency_of[rtype].observe(latency)

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # -- readers -------------------------------------------------------------------------------

    def progress_event(self) -> asyncio.Event:
        """An event set at the next progress of any stream (an ACK or NACK, a new snapshot,
        a close). Take it *before* checking what you wait for, then wait on it: nothing
        that happens in between is missed."""
        return self._progress

    def counts(self) -> ProxyCounts:
        """Proxies out of sync and NACKing (of each node id, its newest counted stream, as
        ``statuses`` reads it) and responses in flight on every open stream: one pass over
        the streams reading what their events keep up to date (for a scrape, not a push)."""
        newest = {s.proxy.node_id: s for s in self._counted()}.values()
        return ProxyCounts(
            out_of_sync=sum(1 for s in newest if not s.in_sync),
            nacking=sum(1 for s in newest if any(ts.nack for ts in s.state.types.values())),
            queue_depth=sum(
                1
                for s in self._streams.values()
                for ts in s.state.types.values()
                if ts.inflight is not None
            ),
        )

    def has_authenticated(self, node_id: str) -> bool:
        """Has ``node_id`` an open authenticated stream?"""
        return any(s.authenticated for s in self._by_node.get(node_id, {}).values())

    def _counted(self) -> list[StreamRecord]:
        """The streams that speak for their proxy, oldest first: of a node id with an
        authenticated stream, only its authenticated streams."""
        streams = list(self._streams.values())
        trusted = {s.proxy.node_id for s in streams if s.authenticated}
        return [s for s in streams if s.authenticated or s.proxy.node_id not in trusted]

    def _counted_of(self, node_id: str) -> list[StreamRecord]:
        """``_counted`` for one node id."""
        streams = list(self._by_node.get(node_id, {}).values())
        if any(s.authenticated for s in streams):
            return [s for s in streams if s.authenticated]
        return streams

    def synced(self, node_id: str, snap: Snapshot) -> bool:
        return any(s.snapshot is snap and s.state.in_sync(snap) for s in self._counted_of(node_id))

    async def wait_synced(
        self,
        targets: Iterable[tuple[str, Snapshot]],
        within: float,
        latest: Callable[[str], Snapshot | None] | None = None,
    ) -> list[str]:
        """Wait until every (node, snapshot) pair is ACKed; return the node ids still behind.
        ``latest``: each node's snapshot now (the cache's). A node given a later snapshot
        meanwhile (a round after the one that published the target: mTLS readiness moving
        as proxies start) is done once it ACKed that one, which holds the change too; it
        never ACKs the target it was not sent, and the wait ran out (a CI run)."""
        pending = dict(targets)
        deadline = asyncio.get_running_loop().time() + within

        def done(node: str, snap: Snapshot) -> bool:
            if self.synced(node, snap):
                return True
            now = latest(node) if latest is not None else None
            return now is not None and now is not snap and self.synced(node, now)

        def behind() -> list[str]:
            return [n for n, s in pending.items() if not done(n, s)]

        loop = asyncio.get_running_loop()
        while behind() and (rest := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(rest):
                    await self._progress.wait()
            except TimeoutError:
                break
        return behind()

    def statuses(self) -> list[ProxyStatus]:
        live = {s.proxy.node_id: s.status() for s in self._counted()}
        self.forget_gone()
        gone = {k: v.status for k, v in self._gone.items() if k not in live}
        return sorted([*live.values(), *gone.values()], key=lambda p: p.node_id)

    def sds_capable(self) -> frozenset[str]:
        """Connected proxies whose newest stream says their Envoy gets secrets over SDS."""
        return frozenset(self._sds)

    def resource_acks(self, node_id: str, select: Select) -> list[ResourceAck] | None:
        """Per resource ``select`` picks, what ``node_id``'s newest counted stream holds
        against its newest snapshot (``xds.acks``); None when it has no open stream."""
        streams = self._counted_of(node_id)
        return resource_acks(streams[-1].state, streams[-1].snapshot, select) if streams else None

    def admin_address(self, node_id: str) -> str | None:
        return next((s.admin for s in self._counted_of(node_id)), None)
