"""``AdsProtocol`` fed responses by hand: the request fields Envoy sends, and what it NACKs."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import any_pb2, wrappers_pb2

from gossamer.testing.ads_client import envoy_node
from gossamer.testing.ads_protocol import AdsProtocol
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import ResourceType

C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE
NODE = envoy_node(ProxyIdentity("sidecar", "default", "web-1"))
ADS = config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource())


def packed(rtype: ResourceType, msg: Any) -> any_pb2.Any:
    return any_pb2.Any(type_url=rtype.url, value=msg.SerializeToString())


def eds_cluster(name: str, timeout: int = 1) -> Any:
    c = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    c.connect_timeout.seconds = timeout
    c.eds_cluster_config.eds_config.CopyFrom(ADS)
    return c


def cla(name: str) -> Any:
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=name)


def listener(name: str, port: int, routes: str = "r1") -> Any:
    hcm = hcm_pb2.HttpConnectionManager(stat_prefix=name)
    hcm.rds.route_config_name = routes
    hcm.rds.config_source.CopyFrom(ADS)
    lst = listener_pb2.Listener(name=name)
    lst.address.socket_address.CopyFrom(
        address_pb2.SocketAddress(address="127.0.0.2", port_value=port)
    )
    f = lst.filter_chains.add().filters.add(name="envoy.filters.network.http_connection_manager")
    f.typed_config.Pack(hcm)
    return lst


def route_config(name: str, cluster: str, validate: bool = False) -> Any:
    rc = route_pb2.RouteConfiguration(name=name)
    if validate:
        rc.validate_clusters.CopyFrom(wrappers_pb2.BoolValue(value=True))
    vh = rc.virtual_hosts.add(name=name, domains=["*"])
    vh.routes.add(
        match=route_components_pb2.RouteMatch(prefix="/"),
        route=route_components_pb2.RouteAction(cluster=cluster),
    )
    return rc


def sotw(rtype: ResourceType, version: str, nonce: str, *msgs: Any) -> Any:
    return discovery_pb2.DiscoveryResponse(
        version_info=version,
        nonce=nonce,
        type_url=rtype.url,
        resources=[packed(rtype, m) for m in msgs],
    )


def delta(
    rtype: ResourceType, nonce: str, *items: tuple[str, Any], removed: tuple[str, ...] = ()
) -> Any:
    return discovery_pb2.DeltaDiscoveryResponse(
        nonce=nonce,
        type_url=rtype.url,
        resources=[
            discovery_pb2.Resource(name=n, version=f"v-{n}", resource=packed(rtype, m))
            for n, m in items
        ],
        removed_resources=list(removed),
    )


def started(*, is_delta: bool) -> AdsProtocol:
    """A protocol past start-up: clusters c1, endpoints c1, listener l1, routes r1."""
    p = AdsProtocol(NODE, delta=is_delta)
    [first] = p.start()
    assert first.node.id == NODE.id and first.type_url == C.url
    if is_delta:
        p.receive(delta(C, "1", ("c1", eds_cluster("c1"))))
        p.receive(delta(E, "2", ("c1", cla("c1"))))
        p.receive(delta(L, "3", ("l1", listener("l1", 9001))))
        p.receive(delta(R, "4", ("r1", route_config("r1", "c1"))))
    else:
        p.receive(sotw(C, "vc1", "1", eds_cluster("c1")))
        p.receive(sotw(E, "ve1", "2", cla("c1")))
        p.receive(sotw(L, "vl1", "3", listener("l1", 9001)))
        p.receive(sotw(R, "vr1", "4", route_config("r1", "c1")))
    assert p.counters.acks == 4 and p.counters.nacks == 0
    assert sorted(p.types[R].resources) == ["r1"]
    return p


def test_sotw_requests_carry_node_once_names_versions_and_nonces() -> None:
    p = AdsProtocol(NODE, delta=False)
    [cds] = p.start()
    assert cds.HasField("node") and cds.resource_names == [] and cds.version_info == ""
    eds, ack = p.receive(sotw(C, "vc1", "n1", eds_cluster("c1"), eds_cluster("c2")))
    assert not eds.HasField("node") and not ack.HasField("node")
    assert (eds.type_url, list(eds.resource_names), eds.response_nonce) == (E.url, ["c1", "c2"], "")
    assert (ack.type_url, ack.version_info, ack.response_nonce) == (C.url, "vc1", "n1")
    assert not ack.HasField("error_detail")
    assert p.warming == {"c1", "c2"}
    [ack] = p.receive(sotw(E, "ve1", "n2", cla("c1")))
    assert ack.version_info == "ve1" and list(ack.resource_names) == ["c1", "c2"]
    assert not p.types[L].requested  # c2 still warming: listeners wait
    lds, ack = p.receive(sotw(E, "ve2", "n3", cla("c2")))
    assert lds.type_url == L.url and ack.type_url == E.url


@pytest.mark.parametrize("is_delta", [False, True], ids=["sotw", "delta"])
def test_undecodable_resource_is_nacked_and_changes_nothing(is_delta: bool) -> None:
    p = started(is_delta=is_delta)
    broken = any_pb2.Any(type_url=C.url, value=b"\xff\xff\xff")
    if is_delta:
        resp = discovery_pb2.DeltaDiscoveryResponse(
            nonce="9",
            type_url=C.url,
            resources=[discovery_pb2.Resource(name="c2", resource=broken)],
        )
    else:
        resp = discovery_pb2.DiscoveryResponse(
            version_info="vc2", nonce="9", type_url=C.url, resources=[broken]
        )
    [nack] = p.receive(resp)
    assert nack.response_nonce == "9" and nack.error_detail.message
    assert nack.error_detail.code == 13
    if not is_delta:
        assert nack.version_info == "vc1"  # the last accepted version
    assert sorted(p.types[C].resources) == ["c1"]
    assert p.counters.nacks == 1 and p.types[C].last_error


@pytest.mark.parametrize("is_delta", [False, True], ids=["sotw", "delta"])
def test_endpoints_for_an_unknown_cluster_are_nacked(is_delta: bool) -> None:
    p = started(is_delta=is_delta)
    resp = delta(E, "9", ("zz", cla("zz"))) if is_delta else sotw(E, "ve9", "9", cla("zz"))
    [nack] = p.receive(resp)
    assert "'zz' was never subscribed" in nack.error_detail.message
    assert "zz" not in p.types[E].resources


@pytest.mark.parametrize("is_delta", [False, True], ids=["sotw", "delta"])
def test_listeners_sharing_an_address_or_without_one_are_nacked(is_delta: bool) -> None:
    p = started(is_delta=is_delta)
    twin = listener("l2", 9001)
    resp = (
        delta(L, "9", ("l2", twin)) if is_delta else sotw(L, "vl2", "9", listener("l1", 9001), twin)
    )
    [nack] = p.receive(resp)
    assert "same address" in nack.error_detail.message
    bare = listener_pb2.Listener(name="l3")
    resp = (
        delta(L, "10", ("l3", bare))
        if is_delta
        else sotw(L, "vl3", "10", listener("l1", 9001), bare)
    )
    [nack] = p.receive(resp)
    assert "address is necessary" in nack.error_detail.message
    assert sorted(p.types[L].resources) == ["l1"]
    if not is_delta:
        assert nack.version_info == "vl1"


@pytest.mark.parametrize("is_delta", [False, True], ids=["sotw", "delta"])
def test_the_good_resources_of_a_nacked_response_are_applied(is_delta: bool) -> None:
    """Envoy's listener and cluster managers apply each resource on its own: a NACK names
    the bad ones and the others take effect (the control plane must not assume otherwise)."""
    p = started(is_delta=is_delta)
    good, bad = listener("l4", 9004, routes="r4"), listener("l5", 9001)
    if is_delta:
        resp = delta(L, "9", ("l4", good), ("l5", bad))
    else:
        resp = sotw(L, "vl9", "9", listener("l1", 9001), good, bad)
    rds, nack = p.receive(resp)
    assert "'l5' has the same address as listener 'l1'" in nack.error_detail.message
    assert sorted(p.types[L].resources) == ["l1", "l4"]
    assert list(rds.resource_names_subscribe if is_delta else rds.resource_names) == (
        ["r4"] if is_delta else ["r1", "r4"]
    )
    assert p.types[L].version == ("" if is_delta else "vl1")  # not accepted as a whole


def test_route_tables_that_validate_clusters_must_name_known_ones() -> None:
    p = started(is_delta=False)
    [nack] = p.receive(sotw(R, "vr2", "9", route_config("r1", "nope", validate=True)))
    assert "unknown cluster 'nope'" in nack.error_detail.message
    [ack] = p.receive(sotw(R, "vr3", "10", route_config("r1", "nope")))  # Envoy: a 503 later
    assert not ack.HasField("error_detail") and ack.version_info == "vr3"


def test_reject_on_demand_then_lift() -> None:
    p = started(is_delta=True)
    rejection = p.reject(C.url, lambda name, msg: msg.connect_timeout.seconds > 1, "too slow")
    [nack] = p.receive(delta(C, "9", ("c1", eds_cluster("c1", timeout=5))))
    assert nack.error_detail.message == "too slow (clusters c1)"
    assert not nack.HasField("node") and nack.response_nonce == "9"
    p.lift(rejection)
    # the updated cluster warms again: its endpoints are needed (Envoy does not ask)
    [ack] = p.receive(delta(C, "10", ("c1", eds_cluster("c1", timeout=5))))
    assert not ack.HasField("error_detail") and p.warming == {"c1"}
    p.receive(delta(E, "11", ("c1", cla("c1"))))
    assert p.warming == set()


def test_delta_removals_and_unsubscribe() -> None:
    p = started(is_delta=True)
    p.receive(delta(C, "5", ("c2", eds_cluster("c2"))))
    sub = p.receive(delta(C, "6", removed=("c1",)))
    assert [list(sub[0].resource_names_unsubscribe), sub[0].type_url] == [["c1"], E.url]
    assert sub[0].response_nonce == "" and sub[1].response_nonce == "6"
    assert sorted(p.types[C].resources) == ["c2"] and p.types[C].removed == ["c1"]
    assert "c1" not in p.types[E].resources
    # endpoints for c1 that crossed the unsubscribe are ignored, not NACKed
    [ack] = p.receive(delta(E, "7", ("c1", cla("c1"))))
    assert not ack.HasField("error_detail") and p.counters.ignored == 1


@pytest.mark.parametrize("is_delta", [False, True], ids=["sotw", "delta"])
def test_reconnect_resumes_every_type_with_what_it_holds(is_delta: bool) -> None:
    p = started(is_delta=is_delta)
    reqs = p.start()
    assert [r.type_url for r in reqs] == [C.url, E.url, L.url, R.url]
    assert reqs[0].HasField("node") and not any(r.HasField("node") for r in reqs[1:])
    if is_delta:
        assert dict(reqs[0].initial_resource_versions) == {"c1": "v-c1"}
        assert list(reqs[3].resource_names_subscribe) == ["r1"]
    else:
        assert [r.version_info for r in reqs] == ["vc1", "ve1", "vl1", "vr1"]
        assert all(r.response_nonce == "" for r in reqs)
        assert list(reqs[1].resource_names) == ["c1"]
