"""OTLP export to a collector (``gossamer telemetry serve --otlp-endpoint HOST:PORT``;
docs/telemetry.md, "OTLP export").

What the service stores is what it exports: the spans of the traces it keeps (after
storage-only sampling, ``traces_sampling``) as OTLP spans, one resource per proxy
(``service.name``), and each closed minute's aggregates as OTLP metrics with DELTA
temporality over that minute (``gossamer.requests``, ``gossamer.requests.4xx``,
``gossamer.requests.5xx``, ``gossamer.request.bytes``, ``gossamer.response.bytes``,
``gossamer.mtls.requests``, ``gossamer.retries`` sums and the ``gossamer.request.duration``
summary in ms with p50/p90/p99 from the minute's sketch), attributes ``view``, ``source``,
``destination``, ``destination.instance``, ``endpoint``. A key written twice for one minute
(entries that came after its flush) is exported twice: deltas add up.

Exports are sent from one task over a grpc aio channel (TLS with the system's roots unless
``--otlp-insecure``), through a bounded queue: when the collector is slow or down, new
batches are dropped and counted (``dropped``), never the service's own ingestion slowed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from gossamer.telemetry.aggregate import Bucket, Key
from gossamer.telemetry.traces import ERROR_TAG, SERVICE_NAME, STATUS_TAG, Span

log = logging.getLogger(__name__)

#: batches (a flush's spans, a flush's minutes) waiting to be sent
QUEUE_SIZE = 64
SEND_TIMEOUT_S = 10.0
SCOPE = common_pb2.InstrumentationScope(name="gossamer.telemetry")
_DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
#: metric name -> the bucket's field
SUMS = {
    "gossamer.requests": "requests",
    "gossamer.requests.4xx": "e4xx",
    "gossamer.requests.5xx": "e5xx",
    "gossamer.request.bytes": "bytes_received",
    "gossamer.response.bytes": "bytes_sent",
    "gossamer.mtls.requests": "mtls",
    "gossamer.retries": "retries",
}
QUANTILES = (0.5, 0.9, 0.99)


@dataclass
class ExportStats:
    span_batches: int = 0
    metric_batches: int = 0
    spans: int = 0
    points: int = 0
    failed: int = 0
    dropped: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "spanBatches": self.span_batches,
            "metricBatches": self.metric_batches,
            "spans": self.spans,
            "points": self.points,
            "failed": self.failed,
            "dropped": self.dropped,
        }


def _kv(key: str, value: str) -> common_pb2.KeyValue:
    return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))


def spans_request(spans: Iterable[Span]) -> trace_service_pb2.ExportTraceServiceRequest:
    """Kept spans as OTLP, one ResourceSpans per proxy (``service.name``)."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    by_service: dict[str, trace_pb2.ScopeSpans] = {}
    for span in spans:
        scope = by_service.get(span.service)
        if scope is None:
            resource = request.resource_spans.add()
            resource.resource.attributes.append(_kv(SERVICE_NAME, span.service))
            scope = by_service[span.service] = resource.scope_spans.add(scope=SCOPE)
        out = scope.spans.add(
            trace_id=bytes.fromhex(span.trace_id),
            span_id=bytes.fromhex(span.span_id),
            parent_span_id=bytes.fromhex(span.parent_id) if span.parent_id else b"",
            name=span.name,
            kind=span.kind,
            start_time_unix_nano=span.start_ns,
            end_time_unix_nano=span.end_ns,
        )
        attributes = dict(span.attributes)
        if span.status:
            attributes[STATUS_TAG] = str(span.status)
        if span.error:
            attributes[ERROR_TAG] = "true"
            out.status.code = trace_pb2.Status.STATUS_CODE_ERROR
        out.attributes.extend(_kv(k, v) for k, v in attributes.items())
    return request


def _attributes(key: Key) -> list[common_pb2.KeyValue]:
    return [
        _kv("view", key.view),
        _kv("source", key.source),
        _kv("destination", key.destination),
        _kv("destination.instance", key.instance),
        _kv("endpoint", key.endpoint),
    ]


def metrics_request(
    buckets: dict[Key, Bucket],
) -> metrics_service_pb2.ExportMetricsServiceRequest:
    """Closed minutes' aggregates as OTLP delta metrics (one point per key and minute)."""
    request = metrics_service_pb2.ExportMetricsServiceRequest()
    scope = request.resource_metrics.add().scope_metrics.add(scope=SCOPE)
    scope.metrics.extend(_metrics(buckets))
    return request


def _metrics(buckets: dict[Key, Bucket]) -> list[metrics_pb2.Metric]:
    sums = {
        name: metrics_pb2.Metric(
            name=name,
            unit="By" if "bytes" in name else "1",
            sum=metrics_pb2.Sum(aggregation_temporality=_DELTA, is_monotonic=True),
        )
        for name in SUMS
    }
    duration = metrics_pb2.Metric(name="gossamer.request.duration", unit="ms")
    duration.summary.SetInParent()
    for key, bucket in buckets.items():
        times: dict[str, Any] = {
            "start_time_unix_nano": key.minute * 60 * 10**9,
            "time_unix_nano": (key.minute + 1) * 60 * 10**9,
        }
        attributes = _attributes(key)
        for name, attr in SUMS.items():
            number = sums[name].sum.data_points.add(as_int=getattr(bucket, attr), **times)
            number.attributes.extend(attributes)
        sketch = bucket.settle()
        point = duration.summary.data_points.add(
            count=bucket.requests, sum=float(sketch.sum) if bucket.requests else 0.0, **times
        )
        point.attributes.extend(attributes)
        for q in QUANTILES if bucket.requests else ():
            value = sketch.get_quantile_value(q)
            point.quantile_values.add(quantile=q, value=float(value or 0.0))
    return [*sums.values(), duration]


Batch = (
    trace_service_pb2.ExportTraceServiceRequest | metrics_service_pb2.ExportMetricsServiceRequest
)


class OtlpExporter:
    """``offer_*`` never wait; ``run`` sends, one batch at a time, until cancelled."""

    def __init__(self, endpoint: str, insecure: bool = False, queue_size: int = QUEUE_SIZE) -> None:
        self.endpoint = endpoint
        self.insecure = insecure
        self.queue: asyncio.Queue[Batch] = asyncio.Queue(maxsize=queue_size)
        self.stats = ExportStats()

    def _offer(self, batch: Batch, size: int) -> None:
        try:
            self.queue.put_nowait(batch)
        except asyncio.QueueFull:
            self.stats.dropped += size
            log.warning("telemetry: OTLP export to %s is behind; dropped a batch", self.endpoint)

    def offer_spans(self, spans: list[Span]) -> None:
        if spans:
            self._offer(spans_request(spans), len(spans))

    def offer_minutes(self, buckets: dict[Key, Bucket]) -> None:
        if buckets:
            self._offer(metrics_request(buckets), len(buckets))

    def _channel(self) -> grpc.aio.Channel:
        if self.insecure:
            return grpc.aio.insecure_channel(self.endpoint)
        return grpc.aio.secure_channel(self.endpoint, grpc.ssl_channel_credentials())

    async def run(self) -> None:
        async with self._channel() as channel:
            traces = trace_service_pb2_grpc.TraceServiceStub(channel)
            metrics = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            while True:
                batch = await self.queue.get()
                await self._send(batch, traces, metrics)

    async def drain(self, timeout_s: float) -> None:
        """At shutdown: send what is queued (the last flush's) within ``timeout_s``."""
        if self.queue.empty():
            return
        async with self._channel() as channel:
            traces = trace_service_pb2_grpc.TraceServiceStub(channel)
            metrics = metrics_service_pb2_grpc.MetricsServiceStub(channel)
            try:
                async with asyncio.timeout(timeout_s):
                    while not self.queue.empty():
                        await self._send(self.queue.get_nowait(), traces, metrics)
            except TimeoutError:
                log.warning("telemetry: OTLP export to %s: not all sent at shutdown", self.endpoint)

    async def _send(
        self,
        batch: Batch,
        traces: trace_service_pb2_grpc.TraceServiceStub,
        metrics: metrics_service_pb2_grpc.MetricsServiceStub,
    ) -> None:
        try:
            if isinstance(batch, trace_service_pb2.ExportTraceServiceRequest):
                await traces.Export(batch, timeout=SEND_TIMEOUT_S)
                self.stats.span_batches += 1
                self.stats.spans += sum(
                    len(s.spans) for r in batch.resource_spans for s in r.scope_spans
                )
            else:
                await metrics.Export(batch, timeout=SEND_TIMEOUT_S)
                self.stats.metric_batches += 1
                self.stats.points += sum(
                    len(m.sum.data_points) + len(m.summary.data_points)
                    for r in batch.resource_metrics
                    for s in r.scope_metrics
                    for m in s.metrics
                )
        except grpc.aio.AioRpcError as e:
            self.stats.failed += 1
            log.warning(
                "telemetry: OTLP export to %s failed (%s): %s; the batch is dropped",
                self.endpoint, e.code().name, e.details(),
            )  # fmt: skip
