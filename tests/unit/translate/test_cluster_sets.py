"""Gateways routing to the same services share one set of clusters and endpoint sets
(``ClusterSets``): their snapshots version it once, and the consistency check looks at
it once, not per gateway (10,000 of each per gateway at 10k services)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from translate_helpers import CLUSTER_INPUTS, shop

from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.layered import Layered
from gossamer.model import ModelSnapshot, Resource, parse_manifest, parse_yaml
from gossamer.translate.cluster_sets import ClusterSets
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.types import API_VERSION, ProxyIdentity
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer

GATEWAYS = ("edge", "side")


def manifest(kind: str, name: str, spec: dict[str, Any]) -> Resource:
    return parse_manifest(
        {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def mesh() -> ModelSnapshot:
    services = [manifest("Service", s, {"ports": [{"name": "http", "port": 8080}]}) for s in "ab"]
    gateways = [
        manifest("Gateway", g, {"address": "127.0.0.1", "port": 18000 + i, "hosts": ["*"]})
        for i, g in enumerate(GATEWAYS)
    ]
    routes = [
        manifest(
            "Route",
            f"to-{s}",
            {
                "gateways": list(GATEWAYS),
                "hosts": [f"{s}.example"],
                "rules": [{"destinations": [{"service": s}]}],
            },
        )
        for s in "ab"
    ]
    return ModelSnapshot().with_changes([*services, *gateways, *routes])


def gateways(t: Translator, snap: ModelSnapshot) -> list[ProxyResources]:
    return [t.proxy(snap, ProxyIdentity("gateway", "default", g)) for g in GATEWAYS]


def eds(cluster: str, service_name: str) -> cluster_pb2.Cluster:
    config = cluster_pb2.Cluster.EdsClusterConfig(service_name=service_name)
    return cluster_pb2.Cluster(
        name=cluster, type=cluster_pb2.Cluster.EDS, eds_cluster_config=config
    )


def cla(name: str) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name)


def test_gateways_to_the_same_services_share_their_sets_and_versioned_mappings() -> None:
    t, serializer = Translator(), Serializer()
    edge, side = gateways(t, mesh())
    assert edge.shared_sets is not None and edge.shared_sets is side.shared_sets
    assert edge.clusters == edge.shared_sets.clusters and edge.clusters is not side.clusters
    one, two = (proxy_snapshot(res, serializer) for res in (edge, side))
    for rtype in (ResourceType.CLUSTER, ResourceType.ENDPOINT):
        assert one.of(rtype) is two.of(rtype)
    # and equal to what a snapshot built without the shared sets holds
    alone = proxy_snapshot(replace(edge, shared_sets=None), Serializer())
    assert alone.resources == one.resources and alone.digests == one.digests


def test_missing_references_on_shared_sets_still_finds_every_missing_set() -> None:
    edge = gateways(Translator(), mesh())[0]
    sets = edge.shared_sets
    assert sets is not None and not sets.unresolved and edge.missing_references() == []
    name = next(iter(sets.clusters))

    # a cluster of its own (or one in place of a shared one) naming a set nobody has
    extra = replace(edge, clusters={**edge.clusters, "extra": eds("extra", "nowhere")})
    assert extra.missing_references() == ["cluster extra needs endpoints nowhere"]
    swapped = replace(edge, clusters={**edge.clusters, name: eds(name, "gone")})
    assert swapped.missing_references() == [f"cluster {name} needs endpoints gone"]
    # a shared set it does not hold: the shared clusters are looked at again
    dropped = replace(edge, endpoints={n: e for n, e in edge.endpoints.items() if n != name})
    assert dropped.missing_references() == [f"cluster {name} needs endpoints {name}"]
    # a shared cluster whose set the shared sets lack (a translator bug): found once there
    broken = ClusterSets.of({"x": eds("x", "nope")}, {})
    assert broken.unresolved == {"x"}
    held = ProxyResources(dict(broken.clusters), {}, shared_sets=broken)
    assert held.missing_references() == ["cluster x needs endpoints nope"]


def test_a_gateway_written_over_its_shared_sets_is_checked_and_served_as_written() -> None:
    """A gateway's clusters and endpoint sets are ``Layered`` copies of the shared sets:
    what the translator or anyone after it writes there is found by the consistency
    check and served, without a walk over the shared names."""
    t, serializer = Translator(), Serializer()
    edge = gateways(t, mesh())[0]
    sets = edge.shared_sets
    assert sets is not None
    assert isinstance(edge.clusters, Layered) and edge.clusters.base is sets.clusters
    assert isinstance(edge.endpoints, Layered) and edge.endpoints.base is sets.endpoints
    name = next(iter(sets.clusters))
    edge.clusters["extra"] = eds("extra", "nowhere")
    edge.clusters[name] = eds(name, "gone")
    assert edge.missing_references() == [
        "cluster extra needs endpoints nowhere",
        f"cluster {name} needs endpoints gone",
    ]
    served = proxy_snapshot(edge, serializer)
    alone = proxy_snapshot(replace(edge, shared_sets=None), Serializer())
    assert served.resources == alone.resources and "extra" in served.of(ResourceType.CLUSTER)
    # a shared set deleted from the gateway's copy: the shared clusters are looked at again
    fresh = gateways(Translator(), mesh())[0]
    del fresh.endpoints[name]
    assert fresh.missing_references() == [f"cluster {name} needs endpoints {name}"]


EDGE = ProxyIdentity("gateway", "default", "edge")
#: a Route for the edge gateway to ``reviews`` too (the service CLUSTER_INPUTS change)
EDGE_TO_REVIEWS = """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge-reviews}
spec:
  gateways: [edge]
  hosts: [reviews.example.com]
  rules: [{destinations: [{service: reviews}], timeout: 3s}]
"""


def edge_to_reviews() -> ModelSnapshot:
    return shop().with_changes(parse_yaml(EDGE_TO_REVIEWS, "reviews.yaml"))


def counted_pairs(t: Translator, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    pairs: list[Any] = []
    pair = t.cluster_pair
    monkeypatch.setattr(t, "cluster_pair", lambda *a: pairs.append(a[1]) or pair(*a))
    return pairs


def test_sets_are_kept_from_round_to_round_while_nothing_they_read_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Route change keeps the clusters a gateway routes to: the next translation takes
    the very sets (their versioned form is then found by identity) and looks nothing up,
    also across prunes of the translator's caches, one of them with no sets taken."""
    warm = Translator()
    snap = edge_to_reviews()
    before = warm.proxy(snap, EDGE).shared_sets
    warm.prune()
    warm.prune()  # (no gateway translated since the last prune)
    timeout = EDGE_TO_REVIEWS.replace("timeout: 3s", "timeout: 4s")
    changed = snap.with_changes(parse_yaml(timeout, "timeout.yaml"))
    pairs = counted_pairs(warm, monkeypatch)
    after = warm.proxy(changed, EDGE)
    assert after.shared_sets is before and pairs == []
    assert after.shared_sets == Translator().proxy(changed, EDGE).shared_sets


@pytest.mark.parametrize("kind", CLUSTER_INPUTS)
def test_kept_sets_are_patched_or_made_again_as_a_fresh_translator_makes_them(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a change of a service or of its workloads only that service's pairs are
    looked up again and put in; after a Mesh, TrafficPolicy or Route change (other clusters
    used) the sets are made again. Either way: what a fresh translator makes."""
    warm = Translator()
    snap = edge_to_reviews()
    before = warm.proxy(snap, EDGE).shared_sets
    warm.prune()
    changed = snap.with_changes(
        parse_yaml(f"apiVersion: gossamer.dev/v1\n{CLUSTER_INPUTS[kind]}\n", "change.yaml")
    )
    pairs = counted_pairs(warm, monkeypatch)
    after = warm.proxy(changed, EDGE)
    fresh = Translator().proxy(changed, EDGE)
    assert after.shared_sets == fresh.shared_sets and after.shared_sets is not before
    assert after.clusters == fresh.clusters and after.endpoints == fresh.endpoints
    if kind in ("Service", "Workload"):
        assert {cr[0][1] for cr in pairs} == {"reviews"}
    else:
        assert len(pairs) == len(fresh.clusters)


def test_patched_sets_find_unresolved_clusters_where_they_changed() -> None:
    sets = ClusterSets.of({"a": eds("a", "a"), "b": eds("b", "b")}, {"a": cla("a"), "b": cla("b")})
    assert sets.patched({"a": (sets.clusters["a"], sets.endpoints["a"])}) is sets  # same pair
    broken = sets.patched({"a": (eds("a", "nowhere"), cla("a"))})
    assert broken.unresolved == {"a"} and sets.unresolved == frozenset()
    assert broken.clusters["b"] is sets.clusters["b"] and broken.clusters is not sets.clusters
    mended = broken.patched({"a": (eds("a", "a"), cla("a"))})
    assert mended.unresolved == frozenset()
    assert ClusterSets.of(dict(mended.clusters), dict(mended.endpoints)) == mended
