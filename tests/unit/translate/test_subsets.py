"""Subsets are clusters of their own: one per (service port, subset) a Route sends to."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from shop import shop
from translate_helpers import translate

from gossamer.model import parse_yaml

REVIEWS = "outbound|default/reviews|http"
V1 = f"{REVIEWS}|version=v1"
V2 = f"{REVIEWS}|version=v2"

#: the gateway also sends /v1 to subset v1 and /gold to workloads with two labels
EDGE = """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge}
spec:
  gateways: [edge]
  rules:
  - matches: [{path: {prefix: /v1}}]
    destinations: [{service: reviews, subset: {version: v1}}]
  - matches: [{path: {prefix: /gold}}]
    destinations: [{service: reviews, subset: {version: v2, tier: gold}}]
  - destinations: [{service: web}]
"""


def hostnames(cla: endpoint_pb2.ClusterLoadAssignment) -> set[str]:
    return {ep.endpoint.hostname for loc in cla.endpoints for ep in loc.lb_endpoints}


def test_subset_endpoints_hold_only_their_workloads() -> None:
    res = translate(shop(), "sidecar", "web-1")
    assert hostnames(res.endpoints[REVIEWS]) == {"reviews-1", "reviews-2"}
    assert hostnames(res.endpoints[V1]) == {"reviews-1"}
    assert hostnames(res.endpoints[V2]) == {"reviews-2"}
    for name in (V1, V2):
        assert res.endpoints[name].cluster_name == name
        assert res.clusters[name].eds_cluster_config.service_name == name


def test_a_subset_cluster_is_the_plain_cluster_under_its_own_name() -> None:
    res = translate(shop(), "sidecar", "web-1")
    for name in (V1, V2):
        cluster = cluster_pb2.Cluster()
        cluster.CopyFrom(res.clusters[name])
        cluster.name = REVIEWS
        cluster.eds_cluster_config.service_name = REVIEWS
        assert cluster == res.clusters[REVIEWS]


def test_only_subsets_a_route_of_the_proxy_uses_are_generated() -> None:
    snap = shop()
    # The gateway routes to ratings and web only: no reviews cluster at all.
    assert set(translate(snap, "gateway", "edge").clusters) == {
        "outbound|default/ratings|grpc",
        "outbound|default/web|http",
    }
    res = translate(snap.with_changes(parse_yaml(EDGE)), "gateway", "edge")
    gold = f"{REVIEWS}|tier=gold,version=v2"
    assert set(res.clusters) == {V1, gold, "outbound|default/web|http"}
    assert hostnames(res.endpoints[V1]) == {"reviews-1"}
    # No workload has tier=gold: the set is empty (503 UH), never another version.
    assert hostnames(res.endpoints[gold]) == set()
    assert res.missing_references() == []


def test_a_label_change_moves_a_workload_between_subsets() -> None:
    moved = parse_yaml(
        "apiVersion: gossamer.dev/v1\nkind: Workload\n"
        "metadata: {name: reviews-1, labels: {version: v2}}\n"
        "spec: {service: reviews, address: 127.0.0.3, ports: [{port: 15001, appPort: 19080}]}\n"
    )
    res = translate(shop().with_changes(moved), "sidecar", "web-1")
    assert hostnames(res.endpoints[V1]) == set()
    assert hostnames(res.endpoints[V2]) == {"reviews-1", "reviews-2"}
    assert hostnames(res.endpoints[REVIEWS]) == {"reviews-1", "reviews-2"}
