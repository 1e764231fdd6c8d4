"""The control plane relays a proxy's stat-sink export (``MetricsService/Export`` on the
xDS ports) only from a client that may speak for the export's ``gossamer.node_id``, by the
rule ADS applies to that node: on the mTLS port a certificate of another host (or another
service) cannot fake a node's counters; it is answered PERMISSION_DENIED and counted."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from tests.integration.xds.test_xds_tls import WEB_1, Host, mesh_of_two_hosts

from gossamer.server.app import ControlPlaneApp
from gossamer.testing.ads_client import open_channel
from gossamer.testing.controlplane import running_control_plane
from gossamer.translate.stat_sink import NODE_ATTRIBUTE

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


def export_of(node_id: str | None) -> metrics_service_pb2.ExportMetricsServiceRequest:
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    resource = request.resource_metrics.add().resource
    if node_id is not None:
        resource.attributes.append(
            common_pb2.KeyValue(key=NODE_ATTRIBUTE, value=common_pb2.AnyValue(string_value=node_id))
        )
    return request


async def export(
    app: ControlPlaneApp, host: Host, request: metrics_service_pb2.ExportMetricsServiceRequest
) -> grpc.StatusCode:
    async with open_channel(app.xds_tls_addr, host.credentials()) as channel:
        stub = metrics_service_pb2_grpc.MetricsServiceStub(channel)
        try:
            await stub.Export(request, timeout=10)
        except grpc.aio.AioRpcError as e:
            return e.code()
        return grpc.StatusCode.OK


async def test_only_the_nodes_own_host_may_export_its_counters(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        relay = app.telemetry_relay
        assert relay is not None
        vm_a, vm_b = await mesh_of_two_hosts(app)  # web-1 is vm-a's; vm-b holds a web cert

        assert await export(app, vm_a, export_of(WEB_1.node_id)) == grpc.StatusCode.OK
        assert (relay.dropped, relay.refused) == (1, 0)  # telemetry off: taken, dropped

        faked = await export(app, vm_b, export_of(WEB_1.node_id))
        assert faked == grpc.StatusCode.PERMISSION_DENIED
        unnamed = await export(app, vm_b, export_of(None))
        assert unnamed == grpc.StatusCode.PERMISSION_DENIED
        mixed = export_of("sidecar~default~web-2")
        mixed.resource_metrics.extend(export_of(WEB_1.node_id).resource_metrics)
        assert await export(app, vm_b, mixed) == grpc.StatusCode.PERMISSION_DENIED
        assert (relay.dropped, relay.refused) == (1, 3)

        assert await export(app, vm_b, export_of("sidecar~default~web-2")) == grpc.StatusCode.OK
        assert relay.dropped == 2
