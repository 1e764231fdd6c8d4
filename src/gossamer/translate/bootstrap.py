"""Envoy bootstraps, built as typed protobufs (never text templates).

* ``ads_bootstrap`` — what an agent writes for a sidecar or gateway: node identity, ADS
  (state-of-the-world or delta) to the control plane, admin on loopback, and with
  ``sds_socket`` the static ``gossamer-sds`` cluster to the agent's SDS server.
  The node itself is written by ``gossamer.node.fill_node`` (read back by ``parse_node``
  there, which the xDS server uses to learn who is connecting). With ``xds_tls`` the
  ``gossamer-xds`` cluster speaks mTLS with the workload's SDS identity and checks that
  the server is the control plane (``CONTROL_PLANE_SAN``). A sidecar's (a node with a
  service) also has its local cluster, its service's instances over EDS
  (``translate.local_cluster``).
* ``static_bootstrap`` — wraps generated xDS resources as static resources so that
  ``envoy --mode validate`` can check them (routes and endpoints are inlined).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import cast

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2, config_source_pb2, extension_pb2, protocol_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2

from gossamer.errors import FieldError, ValidationError
from gossamer.model.snapshot import Ref
from gossamer.node import IDENTITY_KEYS, SDS_KEY, MetadataValue, fill_node
from gossamer.ports import Address
from gossamer.translate import local_cluster, stat_sink
from gossamer.translate.names import SDS_CLUSTER
from gossamer.translate.tls import control_plane_socket
from gossamer.types import ProxyIdentity

XDS_CLUSTER = "gossamer-xds"
#: first and longest wait before an ADS stream is opened again (Envoy: 0.5 s and 30 s)
ADS_RETRY_BASE = timedelta(milliseconds=500)
ADS_RETRY_MAX = timedelta(seconds=4)
#: the path of the control plane's SPIFFE id, ``spiffe://<trust domain>/gossamer/...``: not
#: a workload id (``/ns/<ns>/sa/<svc>``), so the CA never issues it to a host
CONTROL_PLANE_PATH = "gossamer/control-plane"
#: what an Envoy checks the xDS server's URI SAN against (any trust domain: the host does
#: not know it, and the operator may change it; the trust bundle says who issued it)
CONTROL_PLANE_SAN = rf"spiffe://[a-z0-9._-]+/{CONTROL_PLANE_PATH}"


def control_plane_id(trust_domain: str) -> str:
    """The SPIFFE id of the control plane's xDS server certificate."""
    return f"spiffe://{trust_domain}/{CONTROL_PLANE_PATH}"


_HTTP_PROTOCOL_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


def ads_bootstrap(
    node: ProxyIdentity,
    xds_address: Address | Sequence[Address],
    admin_address: tuple[str, int],
    *,
    delta: bool = False,
    metadata: Mapping[str, MetadataValue] | None = None,
    connect_timeout_s: float = 5.0,
    sds_socket: Path | None = None,
    xds_tls: bool = False,
    stats_sink: bool = True,
    stats_flush: timedelta = stat_sink.FLUSH_INTERVAL,
) -> bootstrap_pb2.Bootstrap:
    """An Envoy bootstrap that gets all listeners and clusters over one ADS stream.

    ``metadata`` adds node metadata keys beside the identity keys (``IDENTITY_KEYS``),
    which it may not override. The admin API has no authentication, so ``admin_address``
    must be a loopback address. ``sds_socket`` (an absolute path) adds the static cluster
    ``gossamer-sds`` (HTTP/2 over that Unix socket) through which TLS contexts get the
    ``identity`` and ``trust-bundle`` secrets from the local agent, and says so in the
    node metadata (``SDS_KEY: true``), which is how the control plane learns that this
    proxy may be given mTLS. ``xds_tls`` (needs ``sds_socket``): ADS over mTLS, with the
    ``identity`` and ``trust-bundle`` secrets, to a server whose URI SAN is the control
    plane's (``xds_address`` is then the control plane's ``--xds-tls-addr``).
    ``xds_address`` may name several control-plane replicas: the stream goes to one of
    them, and when it breaks Envoy reconnects to the next (round robin), so a replica that
    dies or closes its streams hands its Envoys to the others.
    ``stats_sink``: Envoy pushes its access-log counters every ``stats_flush`` to the
    control plane over ``gossamer-xds``, which relays them to the telemetry service for
    loss reconciliation (``translate.stat_sink``).
    """
    addresses = _addresses(xds_address)
    errors = [] if addresses else [FieldError("name at least one address", "xds_address")]
    for i, address in enumerate(addresses):
        field = "xds_address" if len(addresses) == 1 else f"xds_address[{i}]"
        errors += _check_address(field, address, min_port=1)
        if address in addresses[:i]:
            errors.append(FieldError(f"{address[0]}:{address[1]} is named twice", field))
    admin_errors = _check_address("admin_address", admin_address, min_port=0)
    errors += admin_errors
    if not admin_errors and not _is_loopback(admin_address[0]):
        errors.append(
            FieldError(
                f"{admin_address[0]!r} is not a loopback address; Envoy's admin API is "
                "unauthenticated, use 127.0.0.1 (or another 127.x.y.z)",
                "admin_address",
            )
        )
    for key in metadata or {}:
        if key in IDENTITY_KEYS:
            errors.append(
                FieldError(
                    f"key {key!r} is reserved for the proxy identity; choose another key",
                    f"metadata.{key}",
                )
            )
        elif key == SDS_KEY:
            errors.append(
                FieldError(
                    f"key {key!r} is set from sds_socket; pass sds_socket instead",
                    f"metadata.{key}",
                )
            )
    if connect_timeout_s <= 0:
        errors.append(FieldError("must be > 0 seconds", "connect_timeout_s"))
    if sds_socket is not None and not sds_socket.is_absolute():
        errors.append(
            FieldError(
                f"{str(sds_socket)!r} is relative; Envoy resolves it from its own working "
                "directory: pass an absolute path",
                "sds_socket",
            )
        )
    if xds_tls and sds_socket is None:
        errors.append(
            FieldError(
                "xDS over mTLS takes the workload's certificate from the agent over SDS: "
                "pass sds_socket too",
                "xds_tls",
            )
        )
    if errors:
        raise ValidationError(errors)

    bootstrap = bootstrap_pb2.Bootstrap()
    extra: dict[str, MetadataValue] = dict(metadata or {})
    if sds_socket is not None:
        extra[SDS_KEY] = True
    fill_node(bootstrap.node, node, extra)

    ads = bootstrap.dynamic_resources.ads_config
    ads.api_type = (
        config_source_pb2.ApiConfigSource.DELTA_GRPC
        if delta
        else config_source_pb2.ApiConfigSource.GRPC
    )
    ads.transport_api_version = config_source_pb2.V3
    ads.set_node_on_first_message_only = True
    grpc = ads.grpc_services.add().envoy_grpc
    grpc.cluster_name = XDS_CLUSTER
    # back-off between attempts to reopen the ADS stream (jittered, doubling): Envoy's
    # default grows to 30 s, so a proxy whose control plane came back could wait that
    # long for its next change (the chaos bench's all-replicas-down)
    grpc.retry_policy.retry_back_off.base_interval.FromTimedelta(ADS_RETRY_BASE)
    grpc.retry_policy.retry_back_off.max_interval.FromTimedelta(ADS_RETRY_MAX)
    for source in (bootstrap.dynamic_resources.cds_config, bootstrap.dynamic_resources.lds_config):
        source.ads.SetInParent()
        source.resource_api_version = config_source_pb2.V3

    xds = _xds_cluster(addresses, connect_timeout_s)
    if xds_tls:
        san = string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=CONTROL_PLANE_SAN))
        xds.transport_socket.CopyFrom(control_plane_socket(san))
    bootstrap.static_resources.clusters.append(xds)
    if sds_socket is not None:
        bootstrap.static_resources.clusters.append(sds_cluster(sds_socket))
    if node.kind == "sidecar" and node.service:
        _local_cluster(bootstrap, (node.namespace, node.service))
    _set_socket_address(bootstrap.admin.address, admin_address)
    if stats_sink:
        bootstrap.stats_sinks.append(stat_sink.stats_sink(node, XDS_CLUSTER))
        bootstrap.stats_flush_interval.FromTimedelta(stats_flush)
        bootstrap.stats_config.CopyFrom(stat_sink.stats_config())  # the latency buckets
    return bootstrap


def _local_cluster(bootstrap: bootstrap_pb2.Bootstrap, service: Ref) -> None:
    """A sidecar's local cluster: its service's instances, among which a
    ``rateLimit`` with ``scope: service`` is shared (``translate.local_cluster``)."""
    cluster = local_cluster.bootstrap_cluster(service)
    bootstrap.static_resources.clusters.append(cluster)
    bootstrap.cluster_manager.local_cluster_name = cluster.name
    runtime = bootstrap.layered_runtime
    runtime.layers.add(name=local_cluster.RUNTIME_LAYER).static_layer.update(local_cluster.RUNTIME)
    runtime.layers.add(name=local_cluster.ADMIN_LAYER).admin_layer.SetInParent()


def static_bootstrap(
    *,
    listeners: Iterable[listener_pb2.Listener] = (),
    clusters: Iterable[cluster_pb2.Cluster] = (),
    endpoints: Iterable[endpoint_pb2.ClusterLoadAssignment] = (),
    routes: Iterable[route_pb2.RouteConfiguration] = (),
    admin_address: tuple[str, int] = ("127.0.0.1", 0),
    node: ProxyIdentity | None = None,
    extension_configs: Iterable[extension_pb2.TypedExtensionConfig] | None = None,
) -> bootstrap_pb2.Bootstrap:
    """Generated xDS resources as one static bootstrap (the inputs are not changed).

    HTTP connection managers that use RDS get their route configuration inlined; EDS
    clusters become STATIC clusters with their ClusterLoadAssignment inlined. A reference
    to a route configuration or an endpoint set that was not given raises
    ``ValidationError`` naming the listener or cluster. With ``extension_configs`` (ECDS
    resources), HTTP filters that discover their config get it inlined, and one not given is
    such an error too; without, they are left discovering it over ADS.
    """
    route_by_name = {r.name: r for r in routes}
    cla_by_name = {c.cluster_name: c for c in endpoints}
    errors: list[FieldError] = []
    bootstrap = bootstrap_pb2.Bootstrap()
    if node is not None:
        fill_node(bootstrap.node, node, {})
    _set_socket_address(bootstrap.admin.address, admin_address)

    for source in listeners:
        listener = bootstrap.static_resources.listeners.add()
        listener.CopyFrom(source)
        chains = [*listener.filter_chains]
        if listener.HasField("default_filter_chain"):
            chains.append(listener.default_filter_chain)
        for chain in chains:
            for net_filter in chain.filters:
                errors += _inline_routes(listener.name, net_filter, route_by_name)
                if extension_configs is not None:
                    by_name = {c.name: c for c in extension_configs}
                    errors += _inline_filter_configs(listener.name, net_filter, by_name)

    for source in clusters:
        cluster = bootstrap.static_resources.clusters.add()
        cluster.CopyFrom(source)
        if cluster.WhichOneof("cluster_discovery_type") != "type":
            continue
        if cluster.type != cluster_pb2.Cluster.EDS:
            continue
        service_name = cluster.eds_cluster_config.service_name or cluster.name
        if service_name not in cla_by_name:
            errors.append(
                FieldError(
                    f"EDS cluster needs endpoints {service_name!r}, which were not given; "
                    "pass its ClusterLoadAssignment in endpoints",
                    "eds_cluster_config",
                    f"Cluster {cluster.name}",
                )
            )
            continue
        cluster.type = cluster_pb2.Cluster.STATIC
        cluster.ClearField("eds_cluster_config")
        cluster.load_assignment.CopyFrom(cla_by_name[service_name])
        cluster.load_assignment.cluster_name = cluster.name
    if errors:
        raise ValidationError(errors)
    return bootstrap


def _inline_routes(
    listener_name: str,
    net_filter: listener_pb2.Filter,
    route_by_name: Mapping[str, route_pb2.RouteConfiguration],
) -> list[FieldError]:
    hcm = hcm_pb2.HttpConnectionManager()
    if not net_filter.typed_config.Is(hcm.DESCRIPTOR):
        return []
    net_filter.typed_config.Unpack(hcm)
    if hcm.WhichOneof("route_specifier") != "rds":
        return []
    route_name = hcm.rds.route_config_name
    if route_name not in route_by_name:
        return [
            FieldError(
                f"uses RDS route configuration {route_name!r}, which was not given; pass it "
                "in routes",
                f"filters[{net_filter.name}].rds",
                f"Listener {listener_name}",
            )
        ]
    hcm.route_config.CopyFrom(route_by_name[route_name])
    net_filter.typed_config.Pack(hcm, deterministic=True)
    return []


def _inline_filter_configs(
    listener_name: str,
    net_filter: listener_pb2.Filter,
    by_name: Mapping[str, extension_pb2.TypedExtensionConfig],
) -> list[FieldError]:
    hcm = hcm_pb2.HttpConnectionManager()
    if not net_filter.typed_config.Is(hcm.DESCRIPTOR):
        return []
    net_filter.typed_config.Unpack(hcm)
    errors = []
    for http_filter in hcm.http_filters:
        if not http_filter.HasField("config_discovery"):
            continue
        if http_filter.name not in by_name:
            errors.append(
                FieldError(
                    f"discovers filter config {http_filter.name!r} (ECDS), which was not "
                    "given; pass it in extension_configs",
                    f"filters[{net_filter.name}].http_filters",
                    f"Listener {listener_name}",
                )
            )
            continue
        http_filter.typed_config.CopyFrom(by_name[http_filter.name].typed_config)
    net_filter.typed_config.Pack(hcm, deterministic=True)
    return errors


def _addresses(given: Address | Sequence[Address]) -> list[Address]:
    """One ``(host, port)`` or several, as a list."""
    if len(given) == 2 and isinstance(given[0], str):
        return [cast(Address, given)]
    return list(cast(Sequence[Address], given))


def _xds_cluster(addresses: Sequence[Address], connect_timeout_s: float) -> cluster_pb2.Cluster:
    """The control plane's replicas, one endpoint each (a host name may resolve to several),
    round robin: each new stream after a broken one goes to the next replica."""
    cluster = cluster_pb2.Cluster(name=XDS_CLUSTER)
    every_ip = all(_is_ip(host) for host, _ in addresses)
    cluster.type = cluster_pb2.Cluster.STATIC if every_ip else cluster_pb2.Cluster.STRICT_DNS
    cluster.connect_timeout.FromNanoseconds(int(connect_timeout_s * 1e9))
    cluster.load_assignment.cluster_name = XDS_CLUSTER
    hosts = cluster.load_assignment.endpoints.add()
    for address in addresses:
        _set_socket_address(hosts.lb_endpoints.add().endpoint.address, address)

    http2 = protocol_pb2.Http2ProtocolOptions()
    http2.connection_keepalive.interval.FromSeconds(30)
    http2.connection_keepalive.timeout.FromSeconds(5)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.CopyFrom(http2)
    cluster.typed_extension_protocol_options[_HTTP_PROTOCOL_OPTIONS].Pack(
        options, deterministic=True
    )

    keepalive = cluster.upstream_connection_options.tcp_keepalive
    keepalive.keepalive_time.value = 60
    keepalive.keepalive_interval.value = 10
    keepalive.keepalive_probes.value = 3
    return cluster


def sds_cluster(path: Path) -> cluster_pb2.Cluster:
    """HTTP/2 (gRPC) to the agent's SDS server on a Unix socket (``pipe`` address)."""
    cluster = cluster_pb2.Cluster(name=SDS_CLUSTER, type=cluster_pb2.Cluster.STATIC)
    cluster.connect_timeout.FromSeconds(1)
    cluster.load_assignment.cluster_name = SDS_CLUSTER
    endpoint = cluster.load_assignment.endpoints.add().lb_endpoints.add().endpoint
    endpoint.address.pipe.path = str(path)
    options = http_protocol_options_pb2.HttpProtocolOptions()
    options.explicit_http_config.http2_protocol_options.SetInParent()
    cluster.typed_extension_protocol_options[_HTTP_PROTOCOL_OPTIONS].Pack(
        options, deterministic=True
    )
    return cluster


def _set_socket_address(out: address_pb2.Address, address: tuple[str, int]) -> None:
    out.socket_address.address = address[0]
    out.socket_address.port_value = address[1]


def _check_address(field: str, address: tuple[str, int], *, min_port: int) -> list[FieldError]:
    host, port = address
    errors = []
    if not host:
        errors.append(FieldError("host must not be empty", f"{field}[0]"))
    if not min_port <= port <= 65535:
        errors.append(FieldError(f"port must be {min_port}..65535, got {port}", f"{field}[1]"))
    return errors


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    return _is_ip(host) and ipaddress.ip_address(host).is_loopback
