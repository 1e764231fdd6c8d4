"""One ADS stream: feeds requests to the protocol state and sends what it plans.

The I/O half of the stream; all protocol decisions are in ``gossamer.xds.state``.

A stream waits on one event of its own, set by its requests and by a new snapshot of its
node (``SnapshotCache.watch``). Responses are encoded from the resources' bytes
(``gossamer.xds.wire``): the gRPC server writes those bytes as they are (``wire=True``);
other transports (the in-process one of ``gossamer.testing``) get them decoded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from gossamer.errors import GossamerError, PermissionDeniedError, XdsError
from gossamer.node import admin_address, envoy_version, parse_node, sds_capable
from gossamer.types import ProxyIdentity
from gossamer.xds.auth import ANONYMOUS, Verdict
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import Outgoing, StreamState
from gossamer.xds.wire import ResponseEncoder

Request = Any  # DiscoveryRequest | DeltaDiscoveryRequest
_EOF = object()


class AdsStream:
    def __init__(
        self,
        key: str,
        *,
        delta: bool,
        cache: SnapshotCache,
        monitor: XdsMonitor,
        read: Callable[[], Awaitable[Request | None]],
        write: Callable[[Any], Awaitable[None]],
        authorize: Callable[[ProxyIdentity], Verdict] = lambda proxy: Verdict(proxy, ANONYMOUS),
        encoder: ResponseEncoder | None = None,
        wire: bool = False,
    ) -> None:
        """``authorize``: may this stream's client subscribe as the proxy its first request
        names? (``PermissionDeniedError`` if not; ``gossamer.xds.auth.check_node``);
        ``encoder``: shared by the streams of one server; ``wire``: ``write`` takes the
        encoded response (bytes), else a ``DiscoveryResponse``/``DeltaDiscoveryResponse``."""
        self.key = key
        self._authorize = authorize
        self.delta = delta
        self.cache = cache
        self.monitor = monitor
        self._read = read
        self._write = write
        self.state = StreamState(delta=delta)
        self._encoder = encoder or ResponseEncoder()
        self._wire = wire
        #: set by each request and each new snapshot of the node
        self._wake = asyncio.Event()
        #: a response is being written: cancelling the stream now would leave its send
        #: pending (``stop`` ends it after the write instead)
        self.writing = False
        self._stopped = False

    @property
    def stopped(self) -> bool:
        """``stop`` ended it."""
        return self._stopped

    def stop(self) -> None:
        """End the stream at its next wake, never in the middle of a write: ``run``
        returns."""
        self._stopped = True
        self._wake.set()

    async def run(self) -> None:
        first = await self._read()
        if first is None:
            return
        if not first.HasField("node"):
            raise XdsError("the first request of a stream must carry the node")
        proxy = parse_node(first.node)
        verdict = self._authorize(proxy)
        authenticated = verdict.peer.authenticated
        if not authenticated and self.monitor.has_authenticated(proxy.node_id):
            raise PermissionDeniedError(
                f"{proxy.node_id} is connected over mTLS with its own certificate: an "
                "anonymous client may not subscribe as it"
            )
        self.monitor.opened(
            self.key,
            proxy,
            self.state,
            "delta" if self.delta else "sotw",
            admin_address(first.node),
            sds=sds_capable(first.node),
            authenticated=authenticated,
            envoy_version=envoy_version(first.node),
        )
        self.cache.attach(proxy)
        self.cache.watch(proxy.node_id, self._wake)
        self._inbox: deque[object] = deque([first])
        try:
            async with asyncio.TaskGroup() as tg:
                reader = tg.create_task(self._reader())
                await self._loop(proxy)
                reader.cancel()
        except ExceptionGroup as group:
            # one error of the stream (e.g. a request in another node's name: refused) is
            # raised as itself, so the server answers it with its status, not INTERNAL
            [first_error, *rest] = group.exceptions
            if rest or not isinstance(first_error, GossamerError):
                raise
            raise first_error from group
        finally:
            self.cache.unwatch(proxy.node_id, self._wake)
            self.cache.detach(proxy)
            self.monitor.closed(self.key)

    async def _reader(self) -> None:
        while (req := await self._read()) is not None:
            self._inbox.append(req)
            self._wake.set()
        self._inbox.append(_EOF)
        self._wake.set()

    async def _loop(self, proxy: ProxyIdentity) -> None:
        node_id = proxy.node_id
        shown: Snapshot | None = None
        wake: float | None = None
        while True:
            # Cleared before the snapshot and the inbox are read: a request or snapshot
            # arriving while we flush sets it again, so no wake-up is lost.
            self._wake.clear()
            if self._stopped:
                return
            snap = self.cache.get(node_id)
            if snap is not None:
                # Requests wait for the first snapshot: an initial request's version can then
                # be recognised, so nothing is sent again after a control-plane restart.
                while self._inbox:
                    item = self._inbox.popleft()
                    if item is _EOF:
                        return
                    self._on_request(item, snap)
                if snap is not shown:
                    shown = snap
                    self.monitor.snapshot(self.key, snap)
                wake = await self._flush(snap)
            elif self._inbox and self._inbox[-1] is _EOF:
                return
            # Requests wake us even before the first snapshot: a proxy that no Workload or
            # Gateway names may wait for good, and its hanging up must end the stream.
            if wake is None:
                await self._wake.wait()
                continue
            try:
                async with asyncio.timeout(max(0.0, wake - time.monotonic())):
                    await self._wake.wait()
            except TimeoutError:
                pass  # a NACKed response's retry is due

    def _on_request(self, req: Request, snap: Snapshot) -> None:
        rtype = ResourceType.from_url(req.type_url)
        if rtype is None:
            return  # a type we do not serve (e.g. secrets before SDS exists): leave it pending
        error = req.error_detail.message if req.HasField("error_detail") else None
        now = time.time()
        if self.delta:
            outcome = self.state.on_request(
                rtype,
                nonce=req.response_nonce,
                now=now,
                subscribe=list(req.resource_names_subscribe),
                unsubscribe=list(req.resource_names_unsubscribe),
                initial_versions=dict(req.initial_resource_versions),
                error=error,
                snapshot=snap,
            )
        else:
            outcome = self.state.on_request(
                rtype,
                nonce=req.response_nonce,
                now=now,
                version_info=req.version_info,
                names=list(req.resource_names),
                error=error,
                snapshot=snap,
            )
        self.monitor.request(self.key, outcome)

    async def _flush(self, snap: Snapshot) -> float | None:
        """Send every response the state allows now; return the monotonic retry time."""
        while True:
            out, wake = self.state.plan(snap, time.time())
            if out is None:
                return None if wake is None else time.monotonic() + (wake - time.time())
            out = self.state.sent(out, snap, time.time())
            self.writing = True
            try:
                await self._write(self._response(out))
            finally:
                self.writing = False
            self.monitor.sent(self.key, out)
            if self._stopped:
                return None

    def _response(self, out: Outgoing) -> Any:
        data = self._encoder.encode(out, self.delta)
        if self._wire:
            return data
        if self.delta:
            return discovery_pb2.DeltaDiscoveryResponse.FromString(data)
        return discovery_pb2.DiscoveryResponse.FromString(data)
