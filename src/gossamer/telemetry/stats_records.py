"""Requests counted by Envoy's stats access logger, turned into minute aggregates
(docs/telemetry.md, "Requests from Envoy's stats").

A proxy whose HCM carries the stats access logger (``translate.telemetry_stats``) adds each
finished request to a histogram ``gossamer.rq_time_us`` tagged with what the view needs;
its OpenTelemetry stat sink pushes every tag combination (a *series*) cumulative, every
10 s, with the tags as attributes (``translate.stat_sink``). Here each export is compared
with the previous one of the same series: the difference is what finished in between, and
goes into the aggregates of the export's minute (on the proxy's clock) as that many
requests, with their latencies from the difference of the histogram's buckets.

Counting is exact: a histogram's sample count is exact in Envoy, and a cumulative figure
lost on the way (the service or the relay down) is recovered by the next export, whole.
The last figures of every series are written with each flush and read at start
(``snapshot``/``restore``), so a restarted service goes on from them: what finished while
it was down arrives with the first export after (in that export's minute). A service
killed without its last flush loses its open minutes but not the figures it had written.
A series whose count went down started again (its Envoy restarted): its figures are new.
A series seen for the first time counts from zero (it was made after the node's previous
export), except in the first export of an Envoy that started more than two minutes before
this process (``_FIRST_EXPORT_GRACE_S``): what it counted before is unknown and may be
hours old, so its series count from there on (``baselined`` in ``/v1/ingestion``; a
restart of this service without saved figures thus misses what finished between the last
export it received and its restart, at most one export interval per proxy).

Latency is as exact as the buckets: each bucket's requests are taken at
``2·lo·hi/(lo+hi)``, at most ``(hi-lo)/(hi+lo)`` from any value in it (5.9 % for the
translator's buckets, ``stat_sink.LATENCY_BUCKETS_US``), then go into the minute's DDSketch
(1 %).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.metrics.v1 import metrics_pb2

from gossamer.errors import GossamerError
from gossamer.telemetry.aggregate import Aggregator
from gossamer.telemetry.entries import (
    GATEWAY_KIND,
    UNAUTHENTICATED,
    UNKNOWN_PREFIX,
    NodeKind,
    Record,
    View,
    outbound_destination,
)
from gossamer.translate import telemetry_stats as names
from gossamer.translate.stat_sink import NODE_ATTRIBUTE, SERVICE_ATTRIBUTE, UPTIME
from gossamer.types import parse_spiffe_id

DURATION_METRIC = f"{names.PREFIX}.{names.DURATION}"
_VIEWS: dict[str, View] = {"outbound": "client", "gateway": "client", "inbound": "server"}
#: an Envoy whose start moved by more than this restarted (its uptime is whole seconds)
_RESTART_SLACK_S = 3.0
#: an Envoy that started at most this long before the service counts from zero in its first
#: export (e.g. beside a control plane whose telemetry child came up a few seconds after
#: it): its counts are of its first minutes, which no flush of this store holds (a flush
#: writes the figures it counted with them), so counting them loses nothing and doubles
#: nothing; an older one's would dump hours of requests into one minute, so it is a baseline
_FIRST_EXPORT_GRACE_S = 120.0


@dataclass
class _Series:
    count: int
    buckets: list[int]


@dataclass
class RequestStatsCounters:
    exports: int = 0
    series: int = 0
    requests: int = 0
    baselined: int = 0
    restarts: int = 0
    refused: int = 0
    by_node: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "exports": self.exports,
            "series": self.series,
            "requests": self.requests,
            "baselined": self.baselined,
            "restarts": self.restarts,
            "refused": self.refused,
            "requestsByNode": dict(self.by_node),
        }


def representative_ms(low_us: float, high_us: float) -> float:
    """The value a bucket's requests are taken at (ms): the one closest, relatively, to
    every value in ``(low, high]``."""
    if low_us <= 0:
        return high_us / 1000.0
    if high_us == float("inf"):
        return low_us / 1000.0
    return 2 * low_us * high_us / (low_us + high_us) / 1000.0


def _peer(uri: str) -> str:
    try:
        _, ns, sa = parse_spiffe_id(uri)
    except GossamerError:
        return f"{UNKNOWN_PREFIX}{uri}"
    return f"{ns}/{sa}"


class RequestStats:
    """Cumulative request histograms of every proxy into ``aggregator``."""

    def __init__(self, aggregator: Aggregator, started_s: float) -> None:
        self.aggregator = aggregator
        self.started_s = started_s
        self.counters = RequestStatsCounters()
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], _Series] = {}
        #: each node's Envoy start (its export's time minus its uptime)
        self._starts: dict[str, float] = {}

    def snapshot(self) -> str:
        """Each series' last cumulative figures and each node's Envoy start (JSON), for
        the store: a restarted service goes on from them, so it loses nothing that an
        export brings after it."""
        series = [[n, list(tags), s.count, s.buckets] for (n, tags), s in self._series.items()]
        return json.dumps({"starts": self._starts, "series": series}, separators=(",", ":"))

    def restore(self, saved: str | None) -> None:
        if not saved:
            return
        data = json.loads(saved)
        self._starts.update({str(k): float(v) for k, v in data["starts"].items()})
        for node, tags, count, buckets in data["series"]:
            key = (str(node), tuple((str(k), str(v)) for k, v in tags))
            self._series[key] = _Series(int(count), [int(b) for b in buckets])

    def export(self, resource_metrics: metrics_pb2.ResourceMetrics) -> int:
        """Take one proxy's export; the requests it added."""
        attributes = {a.key: a.value.string_value for a in resource_metrics.resource.attributes}
        node = attributes.get(NODE_ATTRIBUTE, "")
        parts = node.split("~")
        if len(parts) != 3 or parts[0] not in ("sidecar", "gateway") or not all(parts):
            self.counters.refused += 1
            return 0
        reporter_kind: NodeKind = "gateway" if parts[0] == "gateway" else "service"
        reporter = attributes.get(SERVICE_ATTRIBUTE) or f"{parts[1]}/{parts[2]}"
        instance = f"{parts[1]}/{parts[2]}"
        histograms: list[metrics_pb2.Metric] = []
        uptime_s: float | None = None
        t_ns = 0
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                if metric.name == DURATION_METRIC and metric.HasField("histogram"):
                    histograms.append(metric)
                elif metric.name == UPTIME:
                    for point in metric.gauge.data_points:
                        uptime_s = float(point.as_int)
                        t_ns = max(t_ns, point.time_unix_nano)
        self.counters.exports += 1
        fresh = self._restarted(node, t_ns, uptime_s)
        added = 0
        for metric in histograms:
            for hpoint in metric.histogram.data_points:
                added += self._point(node, reporter, reporter_kind, instance, hpoint, fresh)
        if added:
            self.counters.requests += added
            self.counters.by_node[node] = self.counters.by_node.get(node, 0) + added
        return added

    def _restarted(self, node: str, t_ns: int, uptime_s: float | None) -> bool:
        """Whether a series of this export that the previous one lacked counts from zero:
        always, except in the first export of an Envoy that started before this process
        (it counted requests no export of it brought here)."""
        if uptime_s is None or not t_ns:
            return node in self._starts
        start = t_ns / 1e9 - uptime_s
        known = self._starts.get(node)
        self._starts[node] = start
        if known is None:
            return start >= self.started_s - _FIRST_EXPORT_GRACE_S
        if abs(start - known) > _RESTART_SLACK_S:  # a new Envoy: its counters from zero
            self.counters.restarts += 1
            self._series = {k: v for k, v in self._series.items() if k[0] != node}
        return True

    def _point(
        self,
        node: str,
        reporter: str,
        reporter_kind: NodeKind,
        instance: str,
        point: metrics_pb2.HistogramDataPoint,
        fresh: bool,
    ) -> int:
        tags = {a.key: a.value.string_value for a in point.attributes}
        key = (node, tuple(sorted(tags.items())))
        joined = tags.get(names.JOINED_TAG)
        if joined is not None:  # every field in one tag (``telemetry_stats.Layout``)
            tags = names.split_joined(joined)
        view = _VIEWS.get(tags.get(names.VIEW_TAG, ""))
        if view is None:
            return 0
        counts = list(point.bucket_counts)
        last = self._series.get(key)
        self._series[key] = _Series(point.count, counts)
        if last is None:
            self.counters.series += 1
            if not fresh:  # counted before any export of it came here: from here on
                self.counters.baselined += 1
                return 0
            delta, deltas = point.count, counts
        elif point.count < last.count or len(counts) != len(last.buckets):
            delta, deltas = point.count, counts  # the series started again
        else:
            delta = point.count - last.count
            deltas = [a - b for a, b in zip(counts, last.buckets, strict=True)]
        if delta <= 0:
            return 0
        bounds = [0.0, *point.explicit_bounds, float("inf")]
        latencies = [
            (representative_ms(bounds[i], bounds[i + 1]), n) for i, n in enumerate(deltas) if n > 0
        ]
        record = self._record(view, tags, reporter, reporter_kind, instance, point.time_unix_nano)
        self.aggregator.add_counted(record, delta, latencies)
        return delta

    @staticmethod
    def _record(
        view: View,
        tags: dict[str, str],
        reporter: str,
        reporter_kind: NodeKind,
        instance: str,
        t_ns: int,
    ) -> Record:
        peer = tags.get(names.PEER_TAG, "")
        if peer == "-":
            peer = ""
        local_principal = ""
        if view == "client":
            source, source_kind = reporter, reporter_kind
            cluster = tags.get(names.CLUSTER_TAG, "")
            cluster = "" if cluster == "-" else cluster
            marked = tags.get("dst_kind")
            destination_kind: NodeKind = "service"
            if marked == GATEWAY_KIND and tags.get("dst"):
                destination = None  # through an egress gateway: the hop ends there
            else:
                destination = outbound_destination(cluster) if cluster else None
            if destination is None:
                destination = tags.get("dst") or f"{UNKNOWN_PREFIX}{cluster}"
                if destination.startswith(UNKNOWN_PREFIX):
                    destination_kind = "unknown"
            if marked == "external":
                destination_kind = "external"
            elif marked == GATEWAY_KIND:
                destination_kind = "gateway"
            host = tags.get(names.HOST_TAG, "")
            where = "" if host == "-" else host
        else:
            destination, destination_kind = reporter, reporter_kind
            source = _peer(peer) if peer else UNAUTHENTICATED
            source_kind = "service" if peer else "unknown"
            where = instance
        method = tags.get(names.METHOD_TAG, "") or "-"
        route = tags.get(names.ROUTE_TAG, "") or "-"
        code = tags.get(names.CODE_TAG, "")
        return Record(
            view,
            source,
            source_kind,
            destination,
            destination_kind,
            where,
            f"{method} {route}",
            t_ns // 60_000_000_000,
            int(code) if code.isdigit() else 0,
            0.0,
            0,
            0,
            bool(peer),
            0,
            "-",
            instance,
            peer,
            local_principal,
        )
