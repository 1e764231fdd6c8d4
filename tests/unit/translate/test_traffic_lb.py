"""TrafficPolicy into callers' clusters and routes: load balancer, hash policy, breakers, the
default retry budget, outlier detection, health checks only towards sidecar-less workloads;
and every resulting proxy passes ``envoy --mode validate``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from translate_helpers import shop_with_legacy

from gossamer.envoy.validate import validate_config_sync
from gossamer.model import ModelSnapshot, check_references, parse_yaml
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.inbound_limit import inbound_bucket
from gossamer.translate.proxy import Translator
from gossamer.translate.rate_limit import Bucket
from gossamer.types import ProxyIdentity

POLICIES = """
apiVersion: gossamer.dev/v1
kind: TrafficPolicy
metadata: {name: reviews}
spec:
  service: reviews
  loadBalancer: {algorithm: leastRequest}
  circuitBreaker: {maxConnections: 100, maxPendingRequests: 10, maxRequests: 1000}
  retryBudget: {percent: 30, minConcurrency: 5}
  outlierDetection: {consecutive5xx: 3, interval: 2s, baseEjectionTime: 1m, maxEjectionPercent: 50}
  rateLimit: {requests: 100, per: 1s}
---
apiVersion: gossamer.dev/v1
kind: TrafficPolicy
metadata: {name: reviews-v2}
spec:
  service: reviews
  subset: {version: v2}
  loadBalancer: {algorithm: ringHash, hash: {header: X-User}}
  circuitBreaker: {maxRetries: 2}
---
apiVersion: gossamer.dev/v1
kind: TrafficPolicy
metadata: {name: legacy}
spec:
  service: legacy
  loadBalancer: {algorithm: maglev, hash: {cookie: {name: s, ttl: 1h}}}
  healthCheck: {http: {path: /healthz}, interval: 3s, timeout: 1s}
---
apiVersion: gossamer.dev/v1
kind: TrafficPolicy
metadata: {name: web}
spec:
  service: web
  loadBalancer: {algorithm: ringHash, hash: {sourceIP: true}}
"""
REVIEWS = "outbound|default/reviews|http"
REVIEWS_V1 = REVIEWS + "|version=v1"
REVIEWS_V2 = REVIEWS + "|version=v2"
LEGACY = "outbound|default/legacy|http"
WEB = ProxyIdentity("sidecar", "default", "web-1")
WEB2 = ProxyIdentity("sidecar", "default", "web-2")
EDGE = ProxyIdentity("gateway", "default", "edge")


def with_policies() -> ModelSnapshot:
    snap = shop_with_legacy().with_changes(parse_yaml(POLICIES, "policies.yaml"))
    assert check_references(snap) == []
    return snap


def budget(c: cluster_pb2.Cluster) -> tuple[float, int] | None:
    (t,) = c.circuit_breakers.thresholds
    if not t.HasField("retry_budget"):
        return None
    return (t.retry_budget.budget_percent.value, t.retry_budget.min_retry_concurrency.value)


def test_every_cluster_gets_the_default_retry_budget_without_a_policy() -> None:
    res = Translator().proxy(shop_with_legacy(), WEB2)
    outbound = [c for name, c in res.clusters.items() if name.startswith("outbound|")]
    assert len(outbound) >= 3
    for c in outbound:
        assert budget(c) == (20.0, 3), c.name
        assert c.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN
        assert not c.HasField("outlier_detection") and not c.health_checks


def test_a_service_policy_shapes_its_clusters_and_a_subset_policy_replaces_it() -> None:
    res = Translator().proxy(with_policies(), WEB)
    plain, v1, v2 = (res.clusters[n] for n in (REVIEWS, REVIEWS_V1, REVIEWS_V2))
    for c in (plain, v1):  # v1 has no policy of its own: the service's
        assert c.lb_policy == cluster_pb2.Cluster.LEAST_REQUEST
        (t,) = c.circuit_breakers.thresholds
        assert (t.max_connections.value, t.max_pending_requests.value) == (100, 10)
        assert t.max_requests.value == 1000 and not t.HasField("max_retries")
        assert budget(c) == (30.0, 5)
        od = c.outlier_detection
        assert (od.consecutive_5xx.value, od.interval.seconds) == (3, 2)
        assert (od.base_ejection_time.seconds, od.max_ejection_percent.value) == (60, 50)
        assert not c.health_checks  # reviews has sidecars: their agents check the apps
    assert v2.lb_policy == cluster_pb2.Cluster.RING_HASH and v2.HasField("ring_hash_lb_config")
    (t,) = v2.circuit_breakers.thresholds
    assert t.max_retries.value == 2 and budget(v2) is None  # maxRetries instead of a budget
    assert not v2.HasField("outlier_detection")
    # the routes to the ring-hash subset hash the header; the others hash nothing
    table = res.routes[REVIEWS]
    routes = table.virtual_hosts[0].routes
    canary = next(r for r in routes if r.route.cluster == REVIEWS_V2)
    assert [h.header.header_name for h in canary.route.hash_policy] == ["x-user"]
    split = next(r for r in routes if r.route.weighted_clusters.clusters)
    assert [h.header.header_name for h in split.route.hash_policy] == ["x-user"]
    default = next(r for r in routes if r.route.cluster == REVIEWS)
    assert not default.route.hash_policy


def test_health_checks_and_cookie_hash_towards_sidecar_less_workloads() -> None:
    res = Translator().proxy(with_policies(), WEB2)
    legacy = res.clusters[LEGACY]
    assert legacy.lb_policy == cluster_pb2.Cluster.MAGLEV
    (hc,) = legacy.health_checks
    assert hc.http_health_check.path == "/healthz"
    assert (hc.interval.seconds, hc.timeout.seconds) == (3, 1)
    assert (hc.unhealthy_threshold.value, hc.healthy_threshold.value) == (2, 1)
    (route,) = [r for r in res.routes[LEGACY].virtual_hosts[0].routes]
    (h,) = route.route.hash_policy
    assert (h.cookie.name, h.cookie.ttl.seconds) == ("s", 3600)


def test_source_ip_hashing_at_the_gateway() -> None:
    res = Translator().proxy(with_policies(), EDGE)
    routes = [r for vh in next(iter(res.routes.values())).virtual_hosts for r in vh.routes]
    to_web = [r for r in routes if r.route.cluster == "outbound|default/web|http"]
    assert to_web
    for r in to_web:
        (h,) = r.route.hash_policy
        assert h == rc_pb2.RouteAction.HashPolicy(
            connection_properties=rc_pb2.RouteAction.HashPolicy.ConnectionProperties(source_ip=True)
        )


def test_a_policy_change_rebuilds_only_that_services_clusters() -> None:
    translator = Translator()
    base = shop_with_legacy()
    before = translator.proxy(base, WEB)
    after = translator.proxy(base.with_changes(parse_yaml(POLICIES, "p.yaml")), WEB)
    changed = {n for n in before.clusters if before.clusters[n] != after.clusters[n]}
    assert changed == {REVIEWS, REVIEWS_V1, REVIEWS_V2}
    assert {n for n in before.listeners if before.listeners[n] != after.listeners[n]} == set()


@pytest.mark.integration
def test_every_proxy_with_policies_passes_envoy_validate() -> None:
    snap = with_policies()
    translator = Translator()
    bootstraps = []
    for ident in (WEB, WEB2, EDGE, ProxyIdentity("sidecar", "default", "reviews-1")):
        res = translator.proxy(snap, ident)
        bootstraps.append(
            static_bootstrap(
                listeners=res.listeners.values(),
                clusters=res.clusters.values(),
                endpoints=res.endpoints.values(),
                routes=res.routes.values(),
                node=ident,
            )
        )
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda b: validate_config_sync(b, timeout_s=120.0), bootstraps))


def test_the_rate_limit_is_a_bucket_at_each_of_the_services_sidecars() -> None:
    snap = with_policies()
    reviews_1 = snap.workloads[("default", "reviews-1")]
    reviews_2 = snap.workloads[("default", "reviews-2")]
    assert inbound_bucket(snap, reviews_1) == Bucket(
        "TrafficPolicy:default/reviews", 100, timedelta(seconds=1)
    )
    # reviews-2 is in subset v2, whose own policy (without rateLimit) replaces the service's
    assert inbound_bucket(snap, reviews_2) is None
    res = Translator().proxy(snap, ProxyIdentity("sidecar", "default", "reviews-1"))
    (table,) = [t for name, t in res.routes.items() if name.startswith("inbound|")]
    for route in table.virtual_hosts[0].routes:
        (limit,) = route.route.rate_limits
        assert limit.actions[0].generic_key.descriptor_value == "TrafficPolicy:default/reviews"
