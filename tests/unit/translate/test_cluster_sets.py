"""Gateways routing to the same services share one set of clusters and endpoint sets
(``ClusterSets``): their snapshots version it once, and the consistency check looks at
it once, not per gateway (10,000 of each per gateway at 10k services)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2

from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.layered import Layered
from gossamer.model import ModelSnapshot, Resource, parse_manifest
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
    broken = ClusterSets({"x": eds("x", "nope")}, {})
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
