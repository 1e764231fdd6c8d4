"""Storage-only trace sampling: failed and slow traces kept whole, a stable fraction of the
rest, decided once a trace is quiet; late spans follow the decision; OTLP spans decoded
with Envoy's tags (status, error, request id)."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.trace.v1 import trace_pb2

from gossamer.telemetry.traces import Span, spans_of
from gossamer.telemetry.traces_sampling import TraceSampler, kept_by_fraction

MS = 1_000_000


def span(
    trace: int,
    sid: int,
    parent: int = 0,
    *,
    service: str = "default/a",
    start_ms: float = 0,
    ms: float = 5,
    status: int = 200,
    error: bool = False,
) -> Span:
    start = int(1_800_000_000_000 * MS + start_ms * MS)
    return Span(
        f"{trace:032x}",
        f"{sid:016x}",
        f"{parent:016x}" if parent else "",
        service,
        "op",
        2,
        start,
        start + int(ms * MS),
        status,
        error or status >= 500,
        f"req-{trace}",
        {},
    )


def test_the_opentelemetry_proto_is_the_real_one_not_xds_protos_old_copy() -> None:
    # xds-protos overwrites opentelemetry-proto with an old copy lacking this message
    assert InstrumentationScope(name="envoy").name == "envoy"


def test_otlp_spans_decode_with_envoys_tags() -> None:
    request = trace_service_pb2.ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    rs.resource.attributes.add(key="service.name").value.string_value = "default/web"
    s = rs.scope_spans.add().spans.add(
        trace_id=bytes(range(16)), span_id=bytes(range(8)), parent_span_id=b"\x01" * 8,
        name="ingress", kind=trace_pb2.Span.SPAN_KIND_SERVER,
        start_time_unix_nano=10, end_time_unix_nano=30,
    )  # fmt: skip
    for key, value in (
        ("http.status_code", "503"),
        ("guid:x-request-id", "r-1"),
        ("upstream_cluster", "outbound|default/b|http"),
    ):
        s.attributes.add(key=key).value.string_value = value
    rs.scope_spans[0].spans.add(trace_id=b"short", span_id=b"x")  # no valid ids: skipped
    [got] = spans_of(request)
    assert got.trace_id == bytes(range(16)).hex() and got.parent_id == "01" * 8
    assert (got.service, got.status, got.error, got.request_id) == ("default/web", 503, True, "r-1")
    assert got.attributes == {"upstream_cluster": "outbound|default/b|http"}
    assert got.duration_ns == 20


def test_a_trace_is_decided_once_quiet_and_kept_whole_when_any_span_failed() -> None:
    sampler = TraceSampler(keep=0.0, slow_ms=1000, decision_wait_s=10)
    sampler.add([span(1, 1), span(2, 1)], now=100)
    sampler.add([span(1, 2, 1, service="default/b", status=503)], now=105)
    assert sampler.settle(109) == []  # neither quiet yet
    assert sampler.settle(110) == []  # trace 2 (ok, not sampled) dropped; 1 still waits
    kept = sampler.settle(115)
    assert sorted(s.span_id for s in kept) == ["0000000000000001", "0000000000000002"]
    stats = sampler.stats
    assert (stats.kept_error, stats.dropped, stats.spans_stored, stats.spans_dropped) == (
        1,
        1,
        2,
        1,
    )


def test_slow_traces_are_kept_and_the_rest_by_a_stable_fraction_of_trace_ids() -> None:
    sampler = TraceSampler(keep=0.25, slow_ms=100, decision_wait_s=0)
    slow = span(7, 1, ms=150)
    sampler.add([slow], now=1)
    assert sampler.settle(1) == [slow]
    assert sampler.stats.kept_slow == 1
    ids = [f"{i * 2654435761 % (1 << 128):032x}" for i in range(4000)]
    kept = [t for t in ids if kept_by_fraction(t, 0.25)]
    assert 0.2 < len(kept) / len(ids) < 0.3
    assert kept == [t for t in ids if kept_by_fraction(t, 0.25)]  # the same every time
    assert all(kept_by_fraction(t, 1.0) for t in ids) and not any(
        kept_by_fraction(t, 0.0) for t in ids
    )


def test_late_spans_follow_the_decision_but_a_failed_one_is_kept_anyway() -> None:
    sampler = TraceSampler(keep=0.0, slow_ms=1000, decision_wait_s=0)
    sampler.add([span(3, 1)], now=1)
    assert sampler.settle(1) == []  # dropped
    late_ok, late_failed = span(3, 2, 1), span(3, 3, 1, status=500)
    sampler.add([late_ok, late_failed], now=2)
    assert sampler.settle(2) == [late_failed]
    keep_all = TraceSampler(keep=1.0, decision_wait_s=0)
    keep_all.add([span(4, 1)], now=1)
    keep_all.settle(1)
    keep_all.add([span(4, 2, 1)], now=2)
    assert [s.span_id for s in keep_all.settle(2)] == ["0000000000000002"]


def test_auto_slow_is_the_p99_of_the_root_services_recent_traces() -> None:
    sampler = TraceSampler(keep=0.0, slow_ms=None, decision_wait_s=0)
    for i in range(200):  # a baseline of 200 traces of 10 ms
        sampler.add([span(1000 + i, 1, ms=10)], now=1)
    sampler.settle(1)
    assert sampler.stats.kept_slow == 0  # (no p99 before 100 traces; then none above it)
    sampler.add([span(5000, 1, ms=80), span(5001, 1, ms=9)], now=2)
    kept = sampler.settle(2)
    assert [s.trace_id for s in kept] == [f"{5000:032x}"]


def test_memory_is_bounded_by_deciding_the_oldest_traces_early() -> None:
    sampler = TraceSampler(keep=1.0, decision_wait_s=3600, max_pending=10)
    sampler.add([span(i, 1) for i in range(1, 26)], now=1)
    assert len(sampler.settle(1)) == 15 and sampler.pending_traces == 10
