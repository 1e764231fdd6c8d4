"""The ADS gRPC server (state-of-the-world and delta). It knows only the snapshot cache."""

from __future__ import annotations

import itertools
from typing import Any

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc

from gossamer.errors import ConfigError, GossamerError
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.stream import AdsStream


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
    def __init__(self, cache: SnapshotCache, monitor: XdsMonitor) -> None:
        self.cache = cache
        self.monitor = monitor
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 256 * 1024 * 1024),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
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
