"""Records into minute buckets, and a window's topology and series from them: exact counts,
4xx and 5xx apart, quantiles from merged sketches, both views kept and chosen per edge."""

from __future__ import annotations

import random

import pytest
from envoy.config.core.v3 import base_pb2

from gossamer.errors import ValidationError
from gossamer.node import fill_node
from gossamer.telemetry.aggregate import Aggregator, Bucket, Key, sketch_bytes, sketch_of
from gossamer.telemetry.entries import UPSTREAM_PEER_TAG, Recorder, Reporter
from gossamer.telemetry.query import parse_window, series, topology
from gossamer.testing.telemetry import http_entry
from gossamer.types import ProxyIdentity

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")
API_1 = ProxyIdentity("sidecar", "default", "api-1", service="api")
EDGE = ProxyIdentity("gateway", "default", "edge")
API = "outbound|default/api|http"
WEB = "outbound|default/web|http"
T0 = 1_800_000_000 - 1_800_000_000 % 60


def reporter(who: ProxyIdentity, log_name: str) -> Reporter:
    node = base_pb2.Node()
    fill_node(node, who)
    return Reporter.of(node, log_name)


def feed(agg: Aggregator, who: Reporter, **entry: object) -> None:
    rec = Recorder().record(who, http_entry(**entry))  # type: ignore[arg-type]
    assert rec is not None
    agg.add(rec)


def exact_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[int(q * (len(ordered) - 1))]


def test_counts_errors_bytes_and_quantiles_of_one_edge() -> None:
    agg, web = Aggregator(), reporter(WEB_1, "outbound")
    rng = random.Random(7)
    latencies = [rng.lognormvariate(3, 0.8) for _ in range(2000)]
    statuses = [200] * 1700 + [404] * 150 + [503] * 100 + [0] * 50
    for i, (latency, status) in enumerate(zip(latencies, statuses, strict=True)):
        tags = {UPSTREAM_PEER_TAG: "spiffe://m/ns/default/sa/api"} if i % 2 else {}
        attempts = 2 if i % 10 == 0 else 1
        feed(agg, web, cluster=API, status=status, latency_ms=latency, start_s=T0 + i % 180,
             attempts=attempts, tags=tags)  # fmt: skip
    assert sorted(agg.minutes) == [T0 // 60, T0 // 60 + 1, T0 // 60 + 2]
    out = topology(list(agg.open_buckets(0)), 300.0)
    [edge] = out["edges"]
    assert edge["source"] == "default/web" and edge["destination"] == "default/api"
    assert (edge["requests"], edge["errors4xx"], edge["errors5xx"], edge["errors"]) == (
        2000,
        150,
        150,
        300,
    )
    assert edge["retries"] == 200 and edge["mtls"] == 0.5
    assert edge["bytesReceived"] == 2000 * 120 and edge["bytesSent"] == 2000 * 390
    for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        truth = exact_quantile(latencies, q)
        assert abs(edge["latencyMs"][name] - truth) <= 0.01 * truth + 1e-9, (name, truth)
    assert {n["id"]: n["kind"] for n in out["nodes"]} == {
        "default/api": "service",
        "default/web": "service",
    }


def test_serialised_sketches_merge_to_the_same_quantiles() -> None:
    agg, web = Aggregator(), reporter(WEB_1, "outbound")
    for i in range(600):
        feed(agg, web, cluster=API, latency_ms=1.0 + i, start_s=T0 + i % 120)
    memory = topology(list(agg.open_buckets(0)), 120.0)
    stored = []
    for key, bucket in agg.take().items():
        copy = Bucket()
        copy.requests, copy.sketch = bucket.requests, sketch_of(sketch_bytes(bucket.sketch))
        stored.append((key, copy))
    assert not agg.minutes
    assert topology(stored, 120.0)["edges"][0]["latencyMs"] == memory["edges"][0]["latencyMs"]


def test_an_edge_is_shown_from_the_client_view_where_a_client_reported() -> None:
    agg = Aggregator()
    web, api, edge = (
        reporter(WEB_1, "outbound"),
        reporter(API_1, "inbound"),
        reporter(EDGE, "gateway"),
    )
    for _ in range(5):  # web -> api: both sides report; the client saw one more (a 503 local)
        feed(agg, web, cluster=API, start_s=T0)
        feed(agg, api, peer_uri="spiffe://mesh/ns/default/sa/web", start_s=T0)
    feed(agg, web, cluster=API, status=503, upstream=None, start_s=T0)
    for _ in range(3):  # a caller outside the mesh: only the server saw it
        feed(agg, api, start_s=T0)
    feed(agg, edge, cluster=WEB, start_s=T0)
    buckets = list(agg.open_buckets(0))
    merged = {(e["source"], e["destination"]): e for e in topology(buckets, 60.0)["edges"]}
    assert {k: (e["view"], e["requests"], e["errors5xx"]) for k, e in merged.items()} == {
        ("default/web", "default/api"): ("client", 6, 1),
        ("unauthenticated", "default/api"): ("server", 3, 0),
        ("default/edge", "default/web"): ("client", 1, 0),
    }
    server = topology(buckets, 60.0, "server")["edges"]
    assert {(e["source"], e["requests"]) for e in server} == {
        ("default/web", 5),
        ("unauthenticated", 3),
    }
    kinds = {n["id"]: n["kind"] for n in topology(buckets, 60.0)["nodes"]}
    assert kinds["default/edge"] == "gateway" and kinds["unauthenticated"] == "unknown"


def test_series_per_minute_for_an_edge_and_a_node() -> None:
    agg, web = Aggregator(), reporter(WEB_1, "outbound")
    for i in range(90):
        feed(agg, web, cluster=API, start_s=T0 + i, status=500 if i == 70 else 200)
    feed(agg, reporter(EDGE, "gateway"), cluster=API, start_s=T0)
    buckets = list(agg.open_buckets(0))
    points = series(buckets, source="default/web", destination="default/api")
    assert [(p["minute"], p["requests"], p["errors5xx"]) for p in points] == [
        (T0 // 60, 60, 0),
        (T0 // 60 + 1, 30, 1),
    ]
    into_api = series(buckets, destination="default/api")
    assert [p["requests"] for p in into_api] == [61, 30]


def test_taking_closed_minutes_leaves_the_open_ones() -> None:
    agg, web = Aggregator(), reporter(WEB_1, "outbound")
    for minute in range(3):
        feed(agg, web, cluster=API, start_s=T0 + 60 * minute)
    taken = agg.take(T0 // 60 + 2)
    assert sorted(k.minute for k in taken) == [T0 // 60, T0 // 60 + 1]
    assert list(agg.minutes) == [T0 // 60 + 2]
    assert all(isinstance(k, Key) for k in taken)


@pytest.mark.parametrize("text", ["5", "5min", "-1m", "0m", "m", "40d", "1.5h", ""])
def test_a_bad_window_is_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError, match=r"since: .* is not a window"):
        parse_window(text)


def test_windows() -> None:
    assert [parse_window(t) for t in ("30s", "5m", "2h", "1d")] == [30, 300, 7200, 86400]
