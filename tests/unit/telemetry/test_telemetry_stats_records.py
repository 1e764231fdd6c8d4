"""Cumulative request histograms (``telemetry.stats_records``) into minute aggregates:
differences between exports, counted once however often they are sent again; a series
new in a later export counts whole; an Envoy restart starts its series again; the first
export of an Envoy older than the service is only a baseline, unless the service's saved
figures say where it was; server-view callers from the verified SAN."""

from __future__ import annotations

from opentelemetry.proto.metrics.v1 import metrics_pb2

from gossamer.telemetry.aggregate import Aggregator
from gossamer.telemetry.stats_records import DURATION_METRIC, RequestStats, representative_ms

NODE = "sidecar~default~web-1"
T0 = 1_800_000_000.0
BOUNDS = [1000.0, 2000.0, 4000.0]


def export(
    t_s: float, uptime_s: int, points: list[tuple[dict[str, str], list[int]]], node: str = NODE
) -> metrics_pb2.ResourceMetrics:
    out = metrics_pb2.ResourceMetrics()
    for key, value in (("gossamer.node_id", node), ("service.name", "default/web")):
        out.resource.attributes.add(key=key).value.string_value = value
    scope = out.scope_metrics.add()
    up = scope.metrics.add(name="server.uptime").gauge.data_points.add()
    up.as_int, up.time_unix_nano = uptime_s, int(t_s * 1e9)
    histogram = scope.metrics.add(name=DURATION_METRIC).histogram
    for tags, counts in points:
        point = histogram.data_points.add(time_unix_nano=int(t_s * 1e9))
        for k, v in tags.items():
            point.attributes.add(key=k).value.string_value = v
        point.explicit_bounds.extend(BOUNDS)
        point.bucket_counts.extend(counts)
        point.count = sum(counts)
    return out


OK = {"view": "outbound", "cluster": "outbound|default/api|http", "code": "200",
      "host": "127.0.0.3:80", "method": "GET", "route": "r", "peer": ""}  # fmt: skip
FAIL = {**OK, "code": "503"}


def figures(agg: Aggregator) -> dict[tuple[str, str, str], tuple[int, int]]:
    out = {}
    for buckets in agg.minutes.values():
        for key, b in buckets.items():
            out[(key.source, key.destination, key.endpoint)] = (b.requests, b.e5xx)
    return out


def test_differences_between_exports_are_counted_once() -> None:
    agg = Aggregator()
    stats = RequestStats(agg, started_s=T0 - 100)  # the Envoy started after the service
    assert stats.export(export(T0, 10, [(OK, [2, 1, 0, 0])])) == 3
    assert stats.export(export(T0 + 10, 20, [(OK, [2, 1, 0, 0])])) == 0  # nothing new
    assert stats.export(export(T0 + 20, 30, [(OK, [3, 1, 1, 0]), (FAIL, [0, 0, 0, 2])])) == 4
    assert figures(agg) == {("default/web", "default/api", "GET r"): (7, 2)}
    [bucket] = [b for m in agg.minutes.values() for b in m.values()]
    expected = representative_ms(1000, 2000)  # 3 below 1 ms, then this one, then 3 above
    assert abs(bucket.settle().get_quantile_value(0.5) / expected - 1) < 0.02
    assert bucket.sketch.count == 7


def test_an_envoy_restart_and_an_older_envoy_and_a_saved_state() -> None:
    agg = Aggregator()
    stats = RequestStats(agg, started_s=T0)
    # an Envoy up for an hour before the service: its first export is a baseline
    assert stats.export(export(T0 + 5, 3600, [(OK, [50, 0, 0, 0])])) == 0
    assert stats.export(export(T0 + 15, 3610, [(OK, [52, 0, 0, 0])])) == 2
    # a series new in a later export was made after the previous one: counted whole
    assert stats.export(export(T0 + 25, 3620, [(OK, [52, 0, 0, 0]), (FAIL, [1, 0, 0, 0])])) == 1
    # the Envoy restarted (its start moved): its counts are new
    assert stats.export(export(T0 + 35, 5, [(OK, [4, 0, 0, 0])])) == 4
    assert stats.counters.restarts == 1 and stats.counters.baselined == 1
    # a new service process goes on from the saved figures
    again = RequestStats(Aggregator(), started_s=T0 + 40)
    again.restore(stats.snapshot())
    assert again.export(export(T0 + 45, 15, [(OK, [9, 0, 0, 0])])) == 5


def test_an_envoy_started_just_before_the_service_counts_from_zero() -> None:
    # (a control plane's telemetry child can come up seconds after the Envoys it serves:
    # the requests they finished meanwhile are counted, not taken as a baseline)
    stats = RequestStats(Aggregator(), started_s=T0)
    assert stats.export(export(T0 + 5, 30, [(OK, [3, 0, 0, 0]), (FAIL, [0, 0, 0, 2])])) == 5
    assert stats.counters.baselined == 0


def test_the_server_view_names_the_verified_caller() -> None:
    agg = Aggregator()
    stats = RequestStats(agg, started_s=T0 - 100)
    inbound = {"view": "inbound", "code": "200", "method": "GET", "route": "r",
               "peer": "spiffe://td/ns/default/sa/edge"}  # fmt: skip
    anonymous = {**inbound, "peer": ""}
    stats.export(export(T0, 10, [(inbound, [1, 0, 0, 0]), (anonymous, [0, 1, 0, 0])]))
    keys = {(k.view, k.source, k.destination, k.instance) for m in agg.minutes.values() for k in m}
    assert keys == {
        ("server", "default/edge", "default/web", "default/web-1"),
        ("server", "unauthenticated", "default/web", "default/web-1"),
    }


def test_a_bucket_is_taken_within_its_bound_of_every_value_in_it() -> None:
    low, high = 4000.0, 4500.0
    value = representative_ms(low, high) * 1000
    assert max(value / low - 1, 1 - value / high) <= (high - low) / (high + low) + 1e-9
