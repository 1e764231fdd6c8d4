"""Prometheus export of the telemetry service (``GET /metrics``) in Istio's standard names
and labels, so existing Kiali and Grafana dashboards read Gossamer's mesh.

Built at scrape time from the aggregator's cumulative totals (``Aggregator.totals``: one
per reporter view, reporting workload, source, destination, status, response flags, mTLS
and principals, kept since the process started and never taken by a flush), not from a
metric call per request: counters are exact counts of what was ingested, monotonic while
the process lives; a restart starts them at 0 again, which ``rate()`` expects.

- ``istio_requests_total`` (counter)
- ``istio_request_duration_milliseconds`` (histogram of latencies in ms)
- ``istio_request_bytes`` / ``istio_response_bytes`` (histograms: headers + body, as
  Istio's stats filter counts a request's and response's total size)

all with Envoy's default buckets (``HISTOGRAM_BOUNDS``, the ones Istio's proxies use),
and the service's own ``gossamer_telemetry_*`` counters. Label values Gossamer cannot know
are ``unknown`` as in Istio (docs/telemetry.md, "Prometheus"): who called is never
guessed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from gossamer.errors import GossamerError
from gossamer.telemetry.aggregate import HISTOGRAM_BOUNDS, Aggregator, Total, TotalKey
from gossamer.telemetry.als import AccessLogServicer
from gossamer.telemetry.entries import UNKNOWN_PREFIX
from gossamer.types import parse_spiffe_id

#: Istio's standard labels, in its order
LABELS: tuple[str, ...] = (
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_code",
    "grpc_response_status",
    "response_flags",
    "connection_security_policy",
)
UNKNOWN = "unknown"
#: Istio's canonical revision when a workload has none
LATEST = "latest"
_LE = [floatToGoString(b) for b in HISTOGRAM_BOUNDS] + ["+Inf"]  # type: ignore[no-untyped-call]
_SLOTS = len(_LE)


def _split(ref: str) -> tuple[str, str]:
    """``ns/name`` -> (ns, name); anything else -> (unknown, itself or unknown)."""
    ns, sep, name = ref.partition("/")
    if sep and ns and name:
        return ns, name
    return UNKNOWN, ref or UNKNOWN


def _principal_namespace(principal: str) -> str:
    try:
        return parse_spiffe_id(principal)[1]
    except GossamerError:
        return UNKNOWN


@lru_cache(maxsize=65536)
def labels_of(key: TotalKey) -> tuple[str, ...]:
    """Istio's label values for one total, in ``LABELS`` order.

    Client view (``reporter="source"``): the source is the reporting workload and its
    service; the destination its service from the upstream cluster, its workload unknown
    (Envoy logs the upstream host, not its workload), its namespace and principal from the
    certificate Envoy verified upstream. Server view (``reporter="destination"``): the
    destination is the reporting workload and its service, its principal its own
    certificate's; the source the verified caller's SPIFFE id (namespace, service account
    as app), its workload unknown; no certificate: every source label ``unknown``.
    """
    client = key.view == "client"
    unknown_destination = key.destination_kind == "unknown"
    if unknown_destination:
        host = key.destination.removeprefix(UNKNOWN_PREFIX)
        dst_ns, dst_name = UNKNOWN, host or UNKNOWN
    else:
        dst_ns, dst_name = _split(key.destination)
    if client:
        src_wl_ns, src_wl = _split(key.workload)
        src_app = _split(key.source)[1]
        src_principal = UNKNOWN  # Envoy's access log has no upstream local certificate
        dst_wl = UNKNOWN
        dst_wl_ns = _principal_namespace(key.peer_principal) if key.peer_principal else UNKNOWN
        dst_principal = key.peer_principal or UNKNOWN
    else:
        dst_wl_ns, dst_wl = _split(key.workload)
        dst_principal = key.local_principal or UNKNOWN
        src_wl = UNKNOWN
        if key.source_kind == "unknown":
            src_wl_ns = src_app = src_principal = UNKNOWN
        else:
            src_wl_ns, src_app = _split(key.source)
            src_principal = key.peer_principal or UNKNOWN
    dst_app = UNKNOWN if unknown_destination else dst_name
    service = dst_name if unknown_destination else f"{dst_name}.{dst_ns}"
    src_revision = UNKNOWN if src_app == UNKNOWN else LATEST
    dst_revision = UNKNOWN if dst_app == UNKNOWN else LATEST
    return (
        "source" if client else "destination",
        src_wl,
        src_wl_ns,
        src_principal,
        src_app,
        UNKNOWN,
        src_app,
        src_revision,
        UNKNOWN,
        dst_wl,
        dst_wl_ns,
        dst_principal,
        dst_app,
        UNKNOWN,
        service,
        dst_name,
        dst_ns,
        dst_app,
        dst_revision,
        UNKNOWN,
        "http",
        str(key.status),
        "",
        key.flags,
        "mutual_tls" if key.mtls else "none",
    )


def by_labels(totals: Mapping[tuple[object, ...], Total]) -> dict[tuple[str, ...], Total]:
    """The totals merged per Istio label set (keys its labels do not tell apart, e.g. a
    service and an ExternalService of one name, share one)."""
    out: dict[tuple[str, ...], Total] = {}
    for raw, total in list(totals.items()):
        values = labels_of(TotalKey._make(raw))
        into = out.get(values)
        if into is None:
            into = out[values] = Total()
        into.merge(total)
    return out


def _buckets(counts: list[int], start: int) -> list[tuple[str, float]]:
    running = 0
    out: list[tuple[str, float]] = []
    for i in range(_SLOTS):
        running += counts[start + i]
        out.append((_LE[i], float(running)))
    return out


class IstioCollector(Collector):
    """Istio's request metrics from the aggregator's totals, at every scrape."""

    def __init__(self, aggregator: Aggregator) -> None:
        self.aggregator = aggregator

    def collect(self) -> Iterator[Metric]:
        merged = by_labels(self.aggregator.totals)
        requests = CounterMetricFamily(
            "istio_requests_total", "Requests handled by the mesh's proxies.", labels=LABELS
        )
        histograms = [
            HistogramMetricFamily(
                "istio_request_duration_milliseconds", "Request durations (ms).", labels=LABELS
            ),
            HistogramMetricFamily(
                "istio_request_bytes", "Request sizes (headers + body).", labels=LABELS
            ),
            HistogramMetricFamily(
                "istio_response_bytes", "Response sizes (headers + body).", labels=LABELS
            ),
        ]
        for values, total in merged.items():
            labels = list(values)
            requests.add_metric(labels, float(total.requests))
            for i, family in enumerate(histograms):
                family.add_metric(labels, _buckets(total.counts, i * _SLOTS), float(total.sums[i]))
        yield requests
        yield from histograms


class IngestionCollector(Collector):
    """The service's own counters: what reached it, per proxy (the received side of the
    reconciliation with each Envoy's ``logs_written``)."""

    def __init__(self, servicer: AccessLogServicer) -> None:
        self.servicer = servicer

    def collect(self) -> Iterable[Metric]:
        stats = self.servicer.stats
        entries = CounterMetricFamily(
            "gossamer_telemetry_entries_received",
            "HTTP access-log entries received, per proxy (node id).",
            labels=["node"],
        )
        for node, n in list(self.servicer.received_by_node.items()):
            entries.add_metric([node], float(n))
        yield entries
        yield CounterMetricFamily(
            "gossamer_telemetry_requests",
            "Entries counted as requests (DownstreamEnd).",
            value=float(stats.requests),
        )
        yield CounterMetricFamily(
            "gossamer_telemetry_streams", "Access-log streams accepted.", value=stats.streams_total
        )
        yield CounterMetricFamily(
            "gossamer_telemetry_streams_refused",
            "Access-log streams refused (no usable identifier).",
            value=float(stats.streams_refused),
        )
        yield GaugeMetricFamily(
            "gossamer_telemetry_streams_open", "Open access-log streams.", stats.streams_open
        )


def metrics_registry(aggregator: Aggregator, servicer: AccessLogServicer) -> CollectorRegistry:
    """A registry of its own (no process-wide default registry: no global state)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IstioCollector(aggregator))
    registry.register(IngestionCollector(servicer))
    return registry
