"""Small typed Envoy resources for tests: static clusters, an HTTP and a TCP proxy listener.

These are test fixtures, not the translator: they let tests of the harness, the xDS server
and the agent put a known, minimal config in front of real backends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2

_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

Address = tuple[str, int]


def socket_address(address: Address) -> address_pb2.Address:
    out = address_pb2.Address()
    out.socket_address.address = address[0]
    out.socket_address.port_value = address[1]
    return out


def load_assignment(
    cluster_name: str, addresses: Iterable[Address]
) -> endpoint_pb2.ClusterLoadAssignment:
    cla = endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name)
    locality = cla.endpoints.add()
    for address in addresses:
        locality.lb_endpoints.add().endpoint.address.CopyFrom(socket_address(address))
    return cla


def static_cluster(
    name: str,
    addresses: Iterable[Address],
    *,
    http2: bool = False,
    connect_timeout_s: float = 2.0,
) -> cluster_pb2.Cluster:
    """A STATIC cluster; ``http2`` makes Envoy speak cleartext HTTP/2 to it (gRPC)."""
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.FromNanoseconds(int(connect_timeout_s * 1e9))
    cluster.load_assignment.CopyFrom(load_assignment(name, addresses))
    if http2:
        options = http_protocol_options_pb2.HttpProtocolOptions()
        options.explicit_http_config.http2_protocol_options.SetInParent()
        cluster.typed_extension_protocol_options[_HTTP_PROTOCOL_OPTIONS].Pack(
            options, deterministic=True
        )
    return cluster


def eds_cluster(name: str, *, connect_timeout_s: float = 2.0) -> cluster_pb2.Cluster:
    """A cluster whose endpoints come over ADS (EDS)."""
    cluster = cluster_pb2.Cluster(name=name, type=cluster_pb2.Cluster.EDS)
    cluster.connect_timeout.FromNanoseconds(int(connect_timeout_s * 1e9))
    cluster.eds_cluster_config.eds_config.ads.SetInParent()
    cluster.eds_cluster_config.eds_config.resource_api_version = config_source_pb2.V3
    return cluster


def route_configuration(
    name: str, clusters_by_domain: Mapping[str, str]
) -> route_pb2.RouteConfiguration:
    """One virtual host per domain, sending every path to that domain's cluster."""
    config = route_pb2.RouteConfiguration(name=name)
    for domain, cluster in clusters_by_domain.items():
        vhost = config.virtual_hosts.add(name=domain, domains=[domain, f"{domain}:*"])
        route = vhost.routes.add()
        route.match.prefix = "/"
        route.route.cluster = cluster
    return config


def http_listener(
    name: str, address: Address, routes: route_pb2.RouteConfiguration | str
) -> listener_pb2.Listener:
    """An HTTP/1.1 + HTTP/2 (codec AUTO) listener; ``routes`` inline or an RDS name."""
    hcm = hcm_pb2.HttpConnectionManager(
        stat_prefix=name, codec_type=hcm_pb2.HttpConnectionManager.AUTO
    )
    if isinstance(routes, str):
        hcm.rds.route_config_name = routes
        hcm.rds.config_source.ads.SetInParent()
        hcm.rds.config_source.resource_api_version = config_source_pb2.V3
    else:
        hcm.route_config.CopyFrom(routes)
    router = hcm.http_filters.add(name="envoy.filters.http.router")
    router.typed_config.Pack(router_pb2.Router(), deterministic=True)
    return _listener(name, address, "envoy.filters.network.http_connection_manager", hcm)


def tcp_listener(name: str, address: Address, cluster: str) -> listener_pb2.Listener:
    proxy = tcp_proxy_pb2.TcpProxy(stat_prefix=name, cluster=cluster)
    return _listener(name, address, "envoy.filters.network.tcp_proxy", proxy)


def _listener(
    name: str,
    address: Address,
    filter_name: str,
    config: hcm_pb2.HttpConnectionManager | tcp_proxy_pb2.TcpProxy,
) -> listener_pb2.Listener:
    listener = listener_pb2.Listener(name=name, address=socket_address(address))
    # A leftover Envoy on the same port would otherwise silently share the traffic.
    listener.enable_reuse_port.value = False
    net_filter = listener.filter_chains.add().filters.add(name=filter_name)
    net_filter.typed_config.Pack(config, deterministic=True)
    return listener
