"""OTLP export: a real ``gossamer telemetry serve`` (``--otlp-endpoint``, ``--otlp-insecure``)
fed over gRPC with access-log entries and OTLP spans exports the spans it keeps and each
closed minute's aggregates to an OTLP/gRPC receiver on loopback (run by the test): the
receiver gets the trace's spans with their ids and parent links, and per-minute delta sums
and a latency summary with exactly the requests sent."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import grpc
import pytest
from envoy.service.accesslog.v3 import als_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.testing.ports import free_port
from gossamer.testing.telemetry import batch, first_message, http_entry
from gossamer.translate.names import outbound_cluster
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")
TRACE_ID = bytes.fromhex("83bc98aecd0d92e78ef339de940ca5ca")


class Receiver(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    """An OTLP/gRPC collector: keeps what it gets."""

    def __init__(self) -> None:
        self.traces: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []

    async def Export(self, request, context):  # type: ignore[no-untyped-def]
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self.traces.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()
        self.metrics.append(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def spans() -> trace_service_pb2.ExportTraceServiceRequest:
    request = trace_service_pb2.ExportTraceServiceRequest()
    now = time.time_ns()
    for service, span_id, parent, kind in (
        ("default/web", b"\x01" * 8, b"", trace_pb2.Span.SPAN_KIND_SERVER),
        ("default/api", b"\x02" * 8, b"\x01" * 8, trace_pb2.Span.SPAN_KIND_SERVER),
    ):
        resource = request.resource_spans.add()
        kv = resource.resource.attributes.add(key="service.name")
        kv.value.string_value = service
        span = resource.scope_spans.add().spans.add(
            trace_id=TRACE_ID, span_id=span_id, parent_span_id=parent, name="ingress", kind=kind
        )
        span.start_time_unix_nano, span.end_time_unix_nano = now - 5_000_000, now
        tag = span.attributes.add(key="http.status_code")
        tag.value.string_value = "503"  # failed: always kept
    return request


async def test_kept_spans_and_closed_minutes_reach_the_collector(tmp_path: Path) -> None:
    receiver = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(receiver, server)
    collector = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    grpc_at = ("127.0.0.1", free_port())
    (tmp_path / "token").write_text("t" * 32)
    argv = [
        sys.executable, "-c", "from gossamer.cli.main import run; run()", "telemetry", "serve",
        "--listen", f"{grpc_at[0]}:{grpc_at[1]}", "--http", f"127.0.0.1:{free_port()}",
        "--data", str(tmp_path / "t.sqlite"), "--token-file", str(tmp_path / "token"),
        "--flush-interval", "0.2", "--trace-decision-wait", "0",
        "--otlp-endpoint", f"127.0.0.1:{collector}", "--otlp-insecure",
    ]  # fmt: skip
    process = ManagedProcess(argv, log_path=tmp_path / "telemetry.log", name="telemetry")
    await process.start()
    try:
        cluster = outbound_cluster(("default", "api"), "http")
        # two minutes ago: a closed minute, flushed at once (the previous one still waits)
        minute_ago = int(time.time()) // 60 * 60 - 120
        entries = [http_entry(cluster=cluster, start_s=minute_ago + i) for i in range(9)]
        entries += [http_entry(cluster=cluster, status=503, start_s=minute_ago) for _ in range(3)]
        async with grpc.aio.insecure_channel(f"{grpc_at[0]}:{grpc_at[1]}") as channel:
            await channel.channel_ready()
            stub = als_pb2_grpc.AccessLogServiceStub(channel)

            async def messages():  # type: ignore[no-untyped-def]
                yield first_message(WEB_1, "outbound", entries[:6])
                yield batch(entries[6:])

            await stub.StreamAccessLogs(messages())
            await trace_service_pb2_grpc.TraceServiceStub(channel).Export(spans())

        def got_both() -> bool:
            return bool(receiver.traces) and bool(receiver.metrics)

        await wait_until(got_both, timeout=30, interval=0.1, what="OTLP spans and metrics")
    finally:
        assert await process.stop(grace=15) == 0, process.log_tail()
        await server.stop(None)
    exported = [
        (r.resource.attributes[0].value.string_value, s.span_id, s.parent_span_id, s.trace_id)
        for req in receiver.traces
        for r in req.resource_spans
        for sc in r.scope_spans
        for s in sc.spans
    ]
    assert sorted(exported) == [
        ("default/api", b"\x02" * 8, b"\x01" * 8, TRACE_ID),
        ("default/web", b"\x01" * 8, b"", TRACE_ID),
    ]
    metrics = {
        m.name: m
        for req in receiver.metrics
        for r in req.resource_metrics
        for sc in r.scope_metrics
        for m in sc.metrics
    }
    [requests] = metrics["gossamer.requests"].sum.data_points
    assert requests.as_int == 12
    assert requests.start_time_unix_nano == minute_ago * 10**9
    attrs = {kv.key: kv.value.string_value for kv in requests.attributes}
    assert (attrs["source"], attrs["destination"], attrs["view"]) == (
        "default/web",
        "default/api",
        "client",
    )
    assert metrics["gossamer.requests.5xx"].sum.data_points[0].as_int == 3
    [latency] = metrics["gossamer.request.duration"].summary.data_points
    assert latency.count == 12 and [q.quantile for q in latency.quantile_values] == [0.5, 0.9, 0.99]
    assert abs(latency.quantile_values[0].value - 12.5) <= 0.13  # http_entry's 12.5 ms, 1 %
