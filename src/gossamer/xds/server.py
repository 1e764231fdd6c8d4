"""The ADS gRPC server (state-of-the-world and delta). It knows only the snapshot cache.

It pings every proxy (HTTP/2 keepalive) so a dead or frozen Envoy's stream ends within
``keepalive.time + keepalive.timeout`` instead of staying open for good: the liveness rule
counts streams.

It serves plaintext (``start``) and mTLS (``start_tls``) on separate ports: gRPC cannot
make a client certificate optional on one port. Each stream's peer (its verified client
certificate, or none) is checked against the node id it subscribes as by ``authorize``
(``gossamer.xds.auth.check_node``); a refused stream ends with PERMISSION_DENIED.

``refuse_streams(reason)`` ends every open stream with UNAVAILABLE and refuses new ones
until ``accept_streams()``: a replica that lost its store sends its proxies elsewhere
(``controlplane.store_loss``); each Envoy keeps its last configuration meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf.message import DecodeError

from gossamer.errors import ConfigError, GossamerError, PermissionDeniedError, XdsError
from gossamer.types import ProxyIdentity
from gossamer.xds.auth import Peer, Verdict, peer_of
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.stream import AdsStream
from gossamer.xds.tls import ServerCredentials
from gossamer.xds.wire import ResponseEncoder

log = logging.getLogger(__name__)

#: may this peer subscribe as this proxy? (``PermissionDeniedError`` if not)
Authorizer = Callable[[ProxyIdentity, Peer], Verdict]


def anyone(proxy: ProxyIdentity, peer: Peer) -> Verdict:
    """The authorizer of a server without identity checks (tests, ``--xds-tls off``)."""
    return Verdict(proxy, peer)


@dataclass(frozen=True, slots=True)
class Keepalive:
    """HTTP/2 pings from the xDS server to each proxy (seconds)."""

    #: ping a proxy's connection this often
    time: float = 10.0
    #: close it (ending its streams) when a ping is not answered within this
    timeout: float = 5.0

    def __post_init__(self) -> None:
        for flag, value in (
            ("--xds-keepalive", self.time),
            ("--xds-keepalive-timeout", self.timeout),
        ):
            if not value > 0:
                raise ConfigError(f"{flag} must be > 0 s (defaults: 10 and 5), got {value:g}")

    def grpc_options(self) -> list[tuple[str, int]]:
        return [
            ("grpc.keepalive_time_ms", int(self.time * 1000)),
            ("grpc.keepalive_timeout_ms", int(self.timeout * 1000)),
            # keep pinging an idle stream (no config to send for hours is normal)
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.http2.min_time_between_pings_ms", int(self.time * 1000)),
            ("grpc.http2.ping_timeout_ms", int(self.timeout * 1000)),
            ("grpc.keepalive_permit_without_calls", 1),
            # what proxies may send: Envoy pings every 30 s (translate/bootstrap.py)
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
        ]


#: how long (s) ``refuse_streams`` lets a stream finish a write in flight before cancelling it
STOP_GRACE = 5.0


class _Gate:
    """Shared by both ports: the open streams, and why new ones are refused (None: not)."""

    def __init__(self) -> None:
        self.refusing: str | None = None
        #: each open stream by its scope: expiring it ends the stream
        #: (``XdsServer.refuse_streams``)
        self.streams: dict[asyncio.Timeout, AdsStream] = {}
        #: streams ended or refused with UNAVAILABLE
        self.closed = 0


class _Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        cache: SnapshotCache,
        monitor: XdsMonitor,
        authorize: Authorizer,
        ids: Iterator[int],
        encoder: ResponseEncoder,
        gate: _Gate,
    ) -> None:
        self.cache = cache
        self.monitor = monitor
        self.authorize = authorize
        #: shared by the plaintext and mTLS ports: stream keys are unique in the monitor
        self._ids = ids
        self._encoder = encoder
        self._gate = gate

    async def _serve(self, context: Any, *, delta: bool) -> None:
        gate = self._gate
        if gate.refusing is not None:
            gate.closed += 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, gate.refusing)

        decode = _decoder(delta)

        async def read() -> Any:
            msg = await context.read()
            return None if msg is grpc.aio.EOF else decode(msg)

        peer = peer_of(context.auth_context())
        stream = AdsStream(
            f"stream-{next(self._ids)}",
            delta=delta,
            cache=self.cache,
            monitor=self.monitor,
            read=read,
            write=context.write,
            authorize=lambda proxy: self.authorize(proxy, peer),
            encoder=self._encoder,
            wire=True,
        )
        scope = asyncio.timeout(None)
        try:
            async with scope:
                gate.streams[scope] = stream
                try:
                    await stream.run()
                finally:
                    gate.streams.pop(scope, None)
            if stream.stopped:  # (ended between two writes by ``refuse_streams``)
                await self._unavailable(context)
        except TimeoutError:
            if not scope.expired():
                raise
            await self._unavailable(context)
        except PermissionDeniedError as e:
            log.warning("xDS stream refused (%s): %s", context.peer(), e)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except GossamerError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    async def _unavailable(self, context: Any) -> None:
        gate = self._gate
        gate.closed += 1
        why = gate.refusing or "this control plane is closing its xDS streams"
        await context.abort(grpc.StatusCode.UNAVAILABLE, why)

    async def StreamAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        await self._serve(context, delta=False)

    async def DeltaAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        await self._serve(context, delta=True)


def _as_is(data: bytes) -> bytes:
    """The serializer both ways: streams write responses already encoded (``xds.wire``),
    and requests are decoded by the handler (``_decoder``), not by grpc."""
    return data


def _decoder(delta: bool) -> Callable[[bytes], Any]:
    """Decodes a request in the handler, so bytes that are no request close the stream
    as INVALID_ARGUMENT saying so (grpc's own deserializer answers UNKNOWN)."""
    message = discovery_pb2.DeltaDiscoveryRequest if delta else discovery_pb2.DiscoveryRequest
    name = message.DESCRIPTOR.name

    def decode(data: bytes) -> Any:
        try:
            return message.FromString(data)
        except DecodeError as e:
            raise XdsError(
                f"a message on this stream is not a {name} ({e}); "
                "send xDS requests encoded as the ADS service defines them"
            ) from None

    return decode


def _ads_handler(servicer: _Servicer) -> grpc.GenericRpcHandler:
    """The ADS service as ``ads_pb2_grpc`` registers it, but with responses written as
    the bytes the streams encoded (one encoding of a resource shared by every stream)."""
    return grpc.method_handlers_generic_handler(
        "envoy.service.discovery.v3.AggregatedDiscoveryService",
        {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                servicer.StreamAggregatedResources,
                request_deserializer=_as_is,
                response_serializer=_as_is,
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                servicer.DeltaAggregatedResources,
                request_deserializer=_as_is,
                response_serializer=_as_is,
            ),
        },
    )


class XdsServer:
    def __init__(
        self,
        cache: SnapshotCache,
        monitor: XdsMonitor,
        keepalive: Keepalive | None = None,
        *,
        authorize: Authorizer = anyone,
    ) -> None:
        self.cache = cache
        self.monitor = monitor
        self.keepalive = keepalive or Keepalive()
        self.authorize = authorize
        self._servers: list[grpc.aio.Server] = []
        self._stream_ids = itertools.count(1)
        #: encodes every stream's responses (shared by both ports)
        self.encoder = ResponseEncoder()
        self._gate = _Gate()
        #: the plaintext port (0: not serving plaintext)
        self.port = 0
        #: the mTLS port (0: not serving mTLS)
        self.tls_port = 0
        #: more gRPC services on the same ports, added before ``start`` (the telemetry
        #: relay of the proxies' stat sink, ``server.telemetry_relay``)
        self.services: list[Callable[[grpc.aio.Server], None]] = []

    @property
    def refusing(self) -> str | None:
        """Why streams are refused now (None: they are served)."""
        return self._gate.refusing

    @property
    def streams_closed(self) -> int:
        """Streams ended or refused with UNAVAILABLE by ``refuse_streams``."""
        return self._gate.closed

    def refuse_streams(self, reason: str) -> None:
        """End every open stream with UNAVAILABLE (``reason`` as its message) and refuse
        new ones the same way until ``accept_streams``."""
        self._gate.refusing = reason
        loop = asyncio.get_running_loop()
        open_now = [(sc, st) for sc, st in self._gate.streams.items() if not sc.expired()]
        for scope, stream in open_now:
            if stream.writing:
                # Cancelled now, its send would stay pending and the status ending the
                # stream could not be sent (gRPC: too many operations): the client would
                # wait for good. It ends once the write is done; one whose client stopped
                # reading is cancelled after STOP_GRACE.
                stream.stop()
                scope.reschedule(loop.time() + STOP_GRACE)
            else:
                scope.reschedule(loop.time())
        if open_now:
            log.warning("closing %d xDS streams: %s", len(open_now), reason)

    def accept_streams(self) -> None:
        """Serve new streams again."""
        self._gate.refusing = None

    def _authorize(self, proxy: ProxyIdentity, peer: Peer) -> Verdict:
        return self.authorize(proxy, peer)  # (read at each stream: set after construction)

    def check(self, proxy: ProxyIdentity, peer: Peer) -> Verdict:
        """May ``peer`` speak for ``proxy``, by the rule its ADS streams follow? For the
        other services on these ports (the stat-sink relay, ``server.telemetry_relay``)."""
        return self._authorize(proxy, peer)

    async def start(self, host: str, port: int) -> int:
        """Serve plaintext xDS on ``host:port``; return the port bound."""
        self.port = await self._start(host, port, None, "--xds-addr")
        return self.port

    async def start_tls(self, host: str, port: int, credentials: ServerCredentials) -> int:
        """Serve xDS over mTLS on ``host:port`` (a client certificate from the trust
        bundle is required); return the port bound."""
        self.tls_port = await self._start(host, port, credentials, "--xds-tls-addr")
        return self.tls_port

    async def _start(
        self, host: str, port: int, credentials: ServerCredentials | None, flag: str
    ) -> int:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 256 * 1024 * 1024),
                # a second server on the port fails to bind: with SO_REUSEPORT (gRPC's
                # default) two control planes would share it, each taking some Envoys
                ("grpc.so_reuseport", 0),
                *self.keepalive.grpc_options(),
            ]
        )
        servicer = _Servicer(
            self.cache, self.monitor, self._authorize, self._stream_ids, self.encoder, self._gate
        )
        server.add_generic_rpc_handlers((_ads_handler(servicer),))
        for add in self.services:
            add(server)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 in brackets
        try:
            if credentials is None:
                bound: int = server.add_insecure_port(target)
            else:
                bound = server.add_secure_port(target, credentials.grpc_credentials())
        except RuntimeError:  # (grpcio >= 1.5x raises; older ones returned 0)
            bound = 0
        if bound == 0:
            raise ConfigError(
                f"cannot listen for xDS on {host}:{port}: the port is in use or the address "
                f"is not local; pass another {flag}"
            )
        await server.start()
        self._servers.append(server)
        return bound

    async def stop(self, grace: float = 1.0) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            await server.stop(grace)
