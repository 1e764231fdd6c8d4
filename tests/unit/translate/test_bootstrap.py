from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from hypothesis import given
from hypothesis import strategies as st

from gossamer.envoy.validate import validate_config_sync
from gossamer.errors import ValidationError, XdsError
from gossamer.node import parse_node
from gossamer.testing import resources
from gossamer.translate.bootstrap import (
    XDS_CLUSTER,
    ads_bootstrap,
    static_bootstrap,
)
from gossamer.types import ProxyIdentity

CART = ProxyIdentity("sidecar", "shop", "cart-1", service="cart", host="vm-1", zone="z1")
XDS = ("127.0.0.1", 18000)
ADMIN = ("127.0.0.1", 0)


def test_ads_bootstrap_node_identity() -> None:
    node = ads_bootstrap(CART, XDS, ADMIN).node
    assert node.id == "sidecar~shop~cart-1"
    assert node.cluster == "cart"
    assert node.locality.zone == "z1"
    assert dict(node.metadata) == {
        "gossamer.kind": "sidecar",
        "namespace": "shop",
        "name": "cart-1",
        "service": "cart",
        "host": "vm-1",
        "zone": "z1",
    }


def test_ads_bootstrap_omits_absent_identity_fields() -> None:
    gateway = ProxyIdentity("gateway", "edge", "public")
    node = ads_bootstrap(gateway, XDS, ADMIN).node
    assert node.cluster == "public"
    assert set(node.metadata.fields) == {"gossamer.kind", "namespace", "name"}
    assert not node.HasField("locality")


@pytest.mark.parametrize(
    ("delta", "api_type"),
    [
        (False, config_source_pb2.ApiConfigSource.GRPC),
        (True, config_source_pb2.ApiConfigSource.DELTA_GRPC),
    ],
)
def test_ads_bootstrap_dynamic_resources(delta: bool, api_type: int) -> None:
    dynamic = ads_bootstrap(CART, XDS, ADMIN, delta=delta).dynamic_resources
    ads = dynamic.ads_config
    assert ads.api_type == api_type
    assert ads.transport_api_version == config_source_pb2.V3
    assert ads.set_node_on_first_message_only
    assert [g.envoy_grpc.cluster_name for g in ads.grpc_services] == [XDS_CLUSTER]
    # a stream lost is reopened within seconds of the control plane's return, not 30 s
    back_off = ads.grpc_services[0].envoy_grpc.retry_policy.retry_back_off
    assert (back_off.base_interval.ToMilliseconds(), back_off.max_interval.ToSeconds()) == (500, 4)
    for source in (dynamic.cds_config, dynamic.lds_config):
        assert source.WhichOneof("config_source_specifier") == "ads"
        assert source.resource_api_version == config_source_pb2.V3


def test_ads_bootstrap_xds_cluster_speaks_http2_to_the_control_plane() -> None:
    bootstrap = ads_bootstrap(CART, ("127.0.0.9", 18001), ("127.0.0.1", 9901))
    cluster, _local = bootstrap.static_resources.clusters  # (a sidecar's local cluster)
    assert cluster.name == XDS_CLUSTER
    assert cluster.type == cluster_pb2.Cluster.STATIC
    address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert (address.socket_address.address, address.socket_address.port_value) == (
        "127.0.0.9",
        18001,
    )
    options = http_protocol_options_pb2.HttpProtocolOptions()
    packed = cluster.typed_extension_protocol_options[
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert packed.Unpack(options)
    assert options.explicit_http_config.HasField("http2_protocol_options")
    assert options.explicit_http_config.http2_protocol_options.HasField("connection_keepalive")
    assert cluster.upstream_connection_options.HasField("tcp_keepalive")
    admin = bootstrap.admin.address.socket_address
    assert (admin.address, admin.port_value) == ("127.0.0.1", 9901)


def test_ads_bootstrap_uses_dns_for_a_control_plane_host_name() -> None:
    bootstrap = ads_bootstrap(CART, ("cp.internal", 18000), ADMIN)
    assert bootstrap.static_resources.clusters[0].type == cluster_pb2.Cluster.STRICT_DNS


def test_ads_bootstrap_names_every_control_plane_replica() -> None:
    replicas = [("127.0.0.1", 18000), ("127.0.0.2", 18000), ("127.0.0.3", 18001)]
    [cluster] = ads_bootstrap(CART, replicas, ADMIN).static_resources.clusters[:1]
    assert cluster.type == cluster_pb2.Cluster.STATIC
    assert cluster.lb_policy == cluster_pb2.Cluster.ROUND_ROBIN  # a broken stream: the next
    [hosts] = cluster.load_assignment.endpoints
    got = [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for e in hosts.lb_endpoints
    ]
    assert got == replicas
    mixed = ads_bootstrap(CART, [("127.0.0.1", 18000), ("cp-2.internal", 18000)], ADMIN)
    assert mixed.static_resources.clusters[0].type == cluster_pb2.Cluster.STRICT_DNS


def test_ads_bootstrap_refuses_no_replica_or_one_named_twice() -> None:
    with pytest.raises(ValidationError) as info:
        ads_bootstrap(CART, [], ADMIN)
    assert [(e.path, e.message) for e in info.value.errors] == [
        ("xds_address", "name at least one address")
    ]
    with pytest.raises(ValidationError) as info:
        ads_bootstrap(CART, [XDS, ("", 0), XDS], ADMIN)
    assert {e.path for e in info.value.errors} == {
        "xds_address[1][0]",
        "xds_address[1][1]",
        "xds_address[2]",
    }


def test_ads_bootstrap_metadata_extras() -> None:
    node = ads_bootstrap(CART, XDS, ADMIN, metadata={"version": "1.2", "canary": True}).node
    assert node.metadata.fields["version"].string_value == "1.2"
    assert node.metadata.fields["canary"].bool_value is True
    assert parse_node(node) == CART


def test_ads_bootstrap_rejects_bad_input_naming_fields() -> None:
    with pytest.raises(ValidationError) as info:
        ads_bootstrap(CART, ("", 0), ("10.0.0.1", 9901), metadata={"namespace": "x"})
    paths = {e.path for e in info.value.errors}
    assert paths == {"xds_address[0]", "xds_address[1]", "admin_address", "metadata.namespace"}


@given(
    kind=st.sampled_from(["sidecar", "gateway"]),
    namespace=st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}", fullmatch=True),
    name=st.from_regex(r"[a-z0-9][a-z0-9.-]{0,30}", fullmatch=True),
    service=st.none() | st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    host=st.none() | st.text(min_size=1, max_size=20),
    zone=st.none() | st.text(min_size=1, max_size=20),
)
def test_parse_node_inverts_ads_bootstrap(
    kind: str,
    namespace: str,
    name: str,
    service: str | None,
    host: str | None,
    zone: str | None,
) -> None:
    identity = ProxyIdentity(
        kind,
        namespace,
        name,
        service=service,
        host=host,  # type: ignore[arg-type]
        zone=zone,
    )
    node = base_pb2.Node()
    node.ParseFromString(ads_bootstrap(identity, XDS, ADMIN).node.SerializeToString())
    assert parse_node(node) == identity


def test_parse_node_without_metadata_takes_the_service_from_the_cluster() -> None:
    node = base_pb2.Node(id="sidecar~shop~cart-1", cluster="cart")
    assert parse_node(node) == ProxyIdentity("sidecar", "shop", "cart-1", service="cart")
    gateway = base_pb2.Node(id="gateway~edge~public", cluster="public")
    assert parse_node(gateway) == ProxyIdentity("gateway", "edge", "public")


@pytest.mark.parametrize(
    "node_id",
    [
        "",
        "cart-1",
        "sidecar~shop",
        "router~shop~cart",
        "sidecar~~cart",
        "sidecar~shop~",
        "sidecar~shop~cart~x",
    ],
)
def test_parse_node_rejects_malformed_ids(node_id: str) -> None:
    with pytest.raises(XdsError, match=r"node\.id"):
        parse_node(base_pb2.Node(id=node_id))


def test_parse_node_rejects_metadata_that_contradicts_the_id() -> None:
    node = ads_bootstrap(CART, XDS, ADMIN).node
    node.metadata.fields["namespace"].string_value = "other"
    with pytest.raises(XdsError, match=r"namespace.*'other'"):
        parse_node(node)


def test_parse_node_rejects_non_string_identity_metadata() -> None:
    node = ads_bootstrap(CART, XDS, ADMIN).node
    node.metadata.fields["zone"].number_value = 3
    with pytest.raises(XdsError, match=r"zone.*must be a string"):
        parse_node(node)


def _generated() -> dict[str, list[Any]]:
    return {
        "listeners": [resources.http_listener("in", ("127.0.0.1", 15001), "routes-in")],
        "clusters": [
            resources.eds_cluster("cart"),
            resources.static_cluster("fixed", [("127.0.0.2", 80)]),
        ],
        "endpoints": [resources.load_assignment("cart", [("127.0.0.3", 8080)])],
        "routes": [resources.route_configuration("routes-in", {"cart": "cart"})],
    }


def test_static_bootstrap_inlines_routes_and_endpoints() -> None:
    generated = _generated()
    originals = [m.SerializeToString() for group in generated.values() for m in group]
    bootstrap = static_bootstrap(**generated)

    [listener] = bootstrap.static_resources.listeners
    hcm = hcm_pb2.HttpConnectionManager()
    assert listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    assert hcm.WhichOneof("route_specifier") == "route_config"
    assert hcm.route_config == generated["routes"][0]

    cart, fixed = bootstrap.static_resources.clusters
    assert cart.type == cluster_pb2.Cluster.STATIC
    assert not cart.HasField("eds_cluster_config")
    assert cart.load_assignment == generated["endpoints"][0]
    assert fixed == generated["clusters"][1]
    assert not bootstrap.HasField("dynamic_resources")
    # the inputs were not changed
    assert [m.SerializeToString() for group in generated.values() for m in group] == originals


def test_static_bootstrap_names_missing_references() -> None:
    generated = _generated()
    with pytest.raises(ValidationError) as info:
        static_bootstrap(listeners=generated["listeners"], clusters=generated["clusters"])
    resources_named = {e.resource for e in info.value.errors}
    assert resources_named == {"Listener in", "Cluster cart"}
    assert "routes-in" in str(info.value)


@pytest.mark.integration
def test_generated_bootstraps_pass_envoy_validate() -> None:
    validate_config_sync(static_bootstrap(**_generated()))
    validate_config_sync(ads_bootstrap(CART, XDS, ADMIN))
    validate_config_sync(ads_bootstrap(CART, ("cp.internal", 18000), ADMIN, delta=True))
    validate_config_sync(ads_bootstrap(CART, [XDS, ("cp-2.internal", 18000)], ADMIN))


def test_a_huge_node_id_is_cut_in_the_refusal() -> None:
    # the refusal travels in gRPC's status metadata, which clients cap at 8 KiB: a 4,000
    # character id quoted whole came back RESOURCE_EXHAUSTED instead of INVALID_ARGUMENT
    node = ads_bootstrap(CART, XDS, ADMIN).node
    node.id = "\u202e~~~" * 1000
    with pytest.raises(XdsError) as info:
        parse_node(node)
    message = str(info.value)
    assert "(4000 characters)" in message and len(message) < 600, message
