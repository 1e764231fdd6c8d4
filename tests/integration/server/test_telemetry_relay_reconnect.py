"""The relay reaches a restarted telemetry service within seconds: gRPC's default
reconnect back-off had grown to several seconds after a service was gone for ten, and an
export that met the backing-off channel failed at once, so the chaos bench saw a restarted
service counting again only 25-60 s later. Real gRPC servers on loopback, no Envoy."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

from gossamer.polling import wait_until
from gossamer.server.telemetry_relay import FORWARD_TIMEOUT_S, MetricsRelay
from gossamer.testing.ports import free_port
from gossamer.translate.telemetry import TelemetryService

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]

EXPORT = metrics_service_pb2.ExportMetricsServiceRequest()  # (names no node: relayed as is)
#: how long the service stays away
GONE_S = 10.0


class Service(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    """A telemetry service's ``Export``, counting what reaches it."""

    def __init__(self) -> None:
        self.exports = 0

    async def Export(  # the protocol's name
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: object
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self.exports += 1
        return metrics_service_pb2.ExportMetricsServiceResponse()


@contextlib.asynccontextmanager
async def serving(port: int, service: Service) -> AsyncIterator[None]:
    # without SO_REUSEPORT: a port another process took fails the bind, never shares it
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(service, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield
    finally:
        await server.stop(None)


async def test_a_restarted_service_is_reached_again_within_seconds() -> None:
    port = free_port()
    relay = MetricsRelay()
    relay.target = TelemetryService("127.0.0.1", port)
    front = grpc.aio.server()
    relay.add_to(front)
    relay_port = front.add_insecure_port("127.0.0.1:0")
    await front.start()
    loop = asyncio.get_running_loop()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{relay_port}") as channel:
            proxy = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            first = Service()
            async with serving(port, first):
                await proxy.Export(EXPORT, timeout=10)
            assert first.exports == 1
            # the service gone for GONE_S (the fault itself, not a wait for a condition),
            # an Envoy's export every second meanwhile: each fails. Its port stays bound,
            # not listening (connections refused), so no other process takes it meanwhile
            # (a CI run's restarted service never answered: another test's gRPC server had
            # the port, shared through SO_REUSEPORT)
            with socket.socket() as held:
                held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (TIME_WAIT)
                held.bind(("127.0.0.1", port))
                gone = loop.time()
                while loop.time() - gone < GONE_S:
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        await proxy.Export(EXPORT, timeout=FORWARD_TIMEOUT_S + 5)
                    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
                    await asyncio.sleep(1)
            again = Service()
            async with serving(port, again):
                back = loop.time()

                async def relayed() -> bool:
                    try:
                        await proxy.Export(EXPORT, timeout=FORWARD_TIMEOUT_S + 5)
                    except grpc.aio.AioRpcError:
                        return False
                    return True

                await wait_until(relayed, timeout=30, what="an export relayed again")
                took = loop.time() - back
            assert again.exports == 1
            assert took < 4.0, f"the restarted service was reached after {took:.1f} s"
    finally:
        await front.stop(None)
