"""The Prometheus export in Istio's names and labels: exact cumulative counts from the
aggregator's totals, labels from the reporting proxy and the verified certificates,
histograms with Envoy's default buckets, cumulative per ``le``."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gossamer.node import fill_node
from gossamer.telemetry.aggregate import HISTOGRAM_BOUNDS, Aggregator, TotalKey
from gossamer.telemetry.als import AccessLogServicer
from gossamer.telemetry.entries import UPSTREAM_PEER_TAG, Recorder, Reporter
from gossamer.telemetry.prometheus import LABELS, metrics_registry
from gossamer.testing.telemetry import http_entry
from gossamer.translate.names import outbound_cluster
from gossamer.types import ProxyIdentity

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")
API_7 = ProxyIdentity("sidecar", "shop", "api-7", service="api")
API_CLUSTER = outbound_cluster(("shop", "api"), "http")
API_SAN = "spiffe://mesh/ns/shop/sa/api"
WEB_SAN = "spiffe://mesh/ns/default/sa/web"


def reporter(who: ProxyIdentity, log_name: str) -> Reporter:
    node = base_pb2.Node()
    fill_node(node, who)
    return Reporter.of(node, log_name)


def outbound(**kw: object) -> accesslog_pb2.HTTPAccessLogEntry:
    return http_entry(cluster=API_CLUSTER, tags={UPSTREAM_PEER_TAG: API_SAN}, **kw)  # type: ignore[arg-type]


def feed(
    agg: Aggregator, who: Reporter, entries: Iterable[accesslog_pb2.HTTPAccessLogEntry]
) -> None:
    recorder = Recorder()
    for entry in entries:
        rec = recorder.record(who, entry)
        assert rec is not None
        agg.add(rec)


def scrape(agg: Aggregator) -> dict[str, list[Sample]]:
    text = generate_latest(metrics_registry(agg, AccessLogServicer(agg))).decode()
    return {family.name: list(family.samples) for family in text_string_to_metric_families(text)}


def requests_by(samples: list[Sample], *names: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels[n] for n in names): s.value for s in samples}


def test_requests_total_counts_every_request_per_istio_label_set() -> None:
    agg = Aggregator()
    web_out = reporter(WEB_1, "outbound")
    api_in = reporter(API_7, "inbound")
    feed(agg, web_out, [outbound(status=200) for _ in range(7)])
    feed(agg, web_out, [outbound(status=503) for _ in range(2)])
    feed(agg, api_in, [http_entry(peer_uri=WEB_SAN, status=200) for _ in range(5)])
    feed(agg, api_in, [http_entry(status=404) for _ in range(3)])  # no certificate

    samples = scrape(agg)["istio_requests"]
    assert all(set(s.labels) == set(LABELS) for s in samples)
    assert requests_by(samples, "reporter", "source_workload", "response_code") == {
        ("source", "web-1", "200"): 7,
        ("source", "web-1", "503"): 2,
        ("destination", "unknown", "200"): 5,
        ("destination", "unknown", "404"): 3,
    }
    by_code = {(s.labels["reporter"], s.labels["response_code"]): s.labels for s in samples}
    client = by_code[("source", "200")]
    assert {k: client[k] for k in LABELS if k.startswith("source_")} == {
        "source_workload": "web-1",
        "source_workload_namespace": "default",
        "source_principal": "unknown",
        "source_app": "web",
        "source_version": "unknown",
        "source_canonical_service": "web",
        "source_canonical_revision": "latest",
        "source_cluster": "unknown",
    }
    assert client["destination_service"] == "api.shop"
    assert client["destination_service_name"] == "api"
    assert client["destination_service_namespace"] == "shop"
    assert client["destination_workload"] == "unknown"  # Envoy logs the host, not its workload
    assert client["destination_workload_namespace"] == "shop"  # from the verified SAN
    assert client["destination_principal"] == API_SAN
    assert client["connection_security_policy"] == "mutual_tls"
    assert client["response_flags"] == "-"
    assert client["request_protocol"] == "http"
    server = by_code[("destination", "200")]
    assert server["source_principal"] == WEB_SAN
    assert server["source_workload_namespace"] == "default"
    assert server["source_canonical_service"] == "web"
    assert server["destination_workload"] == "api-7"
    assert server["destination_workload_namespace"] == "shop"
    assert server["destination_service_name"] == "api"
    assert server["destination_principal"] == "spiffe://mesh/ns/x/sa/y"  # its own certificate
    assert server["connection_security_policy"] == "mutual_tls"
    unauthenticated = by_code[("destination", "404")]
    assert unauthenticated["source_principal"] == "unknown"
    assert unauthenticated["source_workload_namespace"] == "unknown"
    assert unauthenticated["source_app"] == "unknown"
    assert unauthenticated["connection_security_policy"] == "none"


def test_response_flags_are_envoys_short_names() -> None:
    agg = Aggregator()
    failed = outbound(status=503)
    failed.common_properties.response_flags.upstream_connection_failure = True
    failed.common_properties.response_flags.upstream_retry_limit_exceeded = True
    denied = outbound(status=403)
    denied.common_properties.response_flags.unauthorized_details.reason = (
        accesslog_pb2.ResponseFlags.Unauthorized.EXTERNAL_SERVICE
    )
    feed(agg, reporter(WEB_1, "outbound"), [failed, failed, denied, outbound()])
    samples = scrape(agg)["istio_requests"]
    assert requests_by(samples, "response_code", "response_flags") == {
        ("503", "UF,URX"): 2,
        ("403", "UAEX"): 1,
        ("200", "-"): 1,
    }


def test_histograms_use_envoys_buckets_cumulatively_with_exact_count_and_sum() -> None:
    agg = Aggregator()
    latencies = [0.25, 3.0, 3.0, 42.0, 900.0, 4_000_000.0]
    feed(
        agg,
        reporter(WEB_1, "outbound"),
        [
            outbound(latency_ms=ms, request_bytes=(100, 0), response_bytes=(50, 5))
            for ms in latencies
        ],
    )
    families = scrape(agg)
    duration = families["istio_request_duration_milliseconds"]
    buckets = {float(s.labels["le"]): s.value for s in duration if s.name.endswith("_bucket")}
    assert sorted(buckets) == [*HISTOGRAM_BOUNDS, float("inf")]
    assert buckets[0.5] == 1
    assert buckets[1] == 1
    assert buckets[5] == 3
    assert buckets[50] == 4
    assert buckets[1000] == 5
    assert buckets[3600000] == 5
    assert buckets[float("inf")] == 6
    values = [buckets[b] for b in sorted(buckets)]
    assert values == sorted(values)  # cumulative
    count = next(s.value for s in duration if s.name.endswith("_count"))
    total = next(s.value for s in duration if s.name.endswith("_sum"))
    assert count == 6
    assert total == sum(latencies)
    sizes = families["istio_response_bytes"]
    response = {float(s.labels["le"]): s.value for s in sizes if s.name.endswith("_bucket")}
    assert response[50] == 0
    assert response[100] == 6  # 55 bytes each
    assert next(s.value for s in sizes if s.name.endswith("_sum")) == 6 * 55
    request = families["istio_request_bytes"]
    assert next(s.value for s in request if s.name.endswith("_sum")) == 600


def test_counters_stay_cumulative_across_flushes() -> None:
    agg = Aggregator()
    who = reporter(WEB_1, "outbound")
    feed(agg, who, [outbound(start_s=1_800_000_000) for _ in range(4)])
    assert agg.take()  # a flush takes every minute bucket
    feed(agg, who, [outbound(start_s=1_800_000_120) for _ in range(3)])
    agg.take()
    samples = scrape(agg)["istio_requests"]
    assert [s.value for s in samples] == [7]


def test_totals_are_keyed_by_the_records_fields() -> None:
    agg = Aggregator()
    entry = http_entry(peer_uri=WEB_SAN, status=418)
    entry.common_properties.response_flags.fault_injected = True
    feed(agg, reporter(API_7, "inbound"), [entry])
    (raw,) = agg.totals
    assert TotalKey._make(raw)._asdict() == {
        "view": "server",
        "workload": "shop/api-7",
        "source": "default/web",
        "source_kind": "service",
        "destination": "shop/api",
        "destination_kind": "service",
        "status": 418,
        "flags": "FI",
        "mtls": True,
        "peer_principal": WEB_SAN,
        "local_principal": "spiffe://mesh/ns/x/sa/y",
    }


def test_the_services_own_counters_say_what_reached_it_per_proxy() -> None:
    agg = Aggregator()
    servicer = AccessLogServicer(agg)
    servicer.received_by_node["sidecar~default~web-1"] = 12
    servicer.stats.requests = 11
    text = generate_latest(metrics_registry(agg, servicer)).decode()
    assert 'gossamer_telemetry_entries_received_total{node="sidecar~default~web-1"} 12.0' in text
    assert "gossamer_telemetry_requests_total 11.0" in text
