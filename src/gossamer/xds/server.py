"""The ADS gRPC server (state-of-the-world and delta). It knows only the snapshot cache.

It pings every proxy (HTTP/2 keepalive) so a dead or frozen Envoy's stream ends within
``keepalive.time + keepalive.timeout`` instead of staying open for good: the liveness rule
counts streams.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc

from gossamer.errors import ConfigError, GossamerError
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.stream import AdsStream


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


class _Servicer(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, cache: SnapshotCache, monitor: XdsMonitor) -> None:
        self.cache = cache
        self.monitor = monitor
        self._ids = itertools.count(1)

    async def _serve(self, context: Any, *, delta: bool) -> None:
        async def read() -> Any:
            msg = await context.read()
            return None if msg is grpc.aio.EOF else msg

        stream = AdsStream(
            f"stream-{next(self._ids)}",
            delta=delta,
            cache=self.cache,
            monitor=self.monitor,
            read=read,
            write=context.write,
        )
        try:
            await stream.run()
        except GossamerError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))

    async def StreamAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        await self._serve(context, delta=False)

    async def DeltaAggregatedResources(self, request_iterator: Any, context: Any) -> None:
        await self._serve(context, delta=True)


class XdsServer:
    def __init__(
        self, cache: SnapshotCache, monitor: XdsMonitor, keepalive: Keepalive | None = None
    ) -> None:
        self.cache = cache
        self.monitor = monitor
        self.keepalive = keepalive or Keepalive()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 256 * 1024 * 1024),
                *self.keepalive.grpc_options(),
            ]
        )
        ads_pb2_grpc.add_AggregatedDiscoveryServiceServicer_to_server(
            _Servicer(self.cache, self.monitor), server
        )
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # IPv6 in brackets
        bound: int = server.add_insecure_port(target)
        if bound == 0:
            raise ConfigError(
                f"cannot listen for xDS on {host}:{port}: the port is in use or the address "
                "is not local; pass another --xds-addr"
            )
        await server.start()
        self._server = server
        self.port = bound
        return bound

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
