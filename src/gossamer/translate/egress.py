"""Egress: an ExternalService as a caller's sidecar serves it at the dependency's stable
local address.

One cluster per external service (``outbound|<ns>/<name>|<protocol>``): host names are a
``STRICT_DNS`` cluster resolved by Envoy's ``getaddrinfo`` resolver (the host's own
resolver: ``/etc/hosts``, nsswitch, search domains), every address a host (so outlier
detection ejects a bad one); addresses are ``STATIC``. ``https`` clusters originate TLS with
SNI and a DNS-SAN check for ``server_name``, trusting ``tls.ca`` (inline) or the system
bundle at ``SYSTEM_CA_BUNDLE`` on the sidecar's host. Its TrafficPolicy (breakers, retry
budget, outlier detection, active health checks, load balancer) applies as to a mesh
service's cluster; HTTP ones get a route table (``outbound|<ns>/<name>|<protocol>``) of the
Routes for the service, then the mesh's default timeout and retries, sending ``Host`` as the
server expects it and no ``x-envoy-*`` headers out of the mesh. ``tcp`` and ``tls``
(passthrough) are TCP proxies.

With ``via: {gateway}`` the caller's cluster of that name points at the egress gateway
instead (``egress_via.sidecar_cluster``: HTTP/2, mTLS when both ends can) and the
gateway holds the cluster described above (``egress_gateway``); the route table stays at the
caller, sending ``Host`` as a literal (the gateway's address would be the "resolved host").
"""

from __future__ import annotations

from datetime import timedelta

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, extension_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.network.dns_resolver.getaddrinfo.v3 import (
    getaddrinfo_dns_resolver_pb2 as getaddrinfo_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from gossamer.model.external_service import ExternalService
from gossamer.model.mesh import Mesh
from gossamer.model.route import Destination, Route
from gossamer.model.route_actions import Mirror
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.model.workload import Dependency
from gossamer.translate import egress_via, names
from gossamer.translate.common import any_of, duration, socket_address, upstream_protocol
from gossamer.translate.hcm import ROUTER_FILTER, http_connection_manager
from gossamer.translate.lb import add_hash_policies, apply_policy
from gossamer.translate.listeners import OUTBOUND, http_listener, tcp_listener
from gossamer.translate.memo import Memo
from gossamer.translate.routes import (
    default_route,
    route_configuration,
    routes_for_rules,
    rule_entries,
)
from gossamer.translate.tls import NO_TLS, TLS_TRANSPORT_SOCKET, TlsState

#: the CA bundle an ``https`` external service without ``tls.ca`` is verified against, on
#: the sidecar's host (Debian, Ubuntu, Alpine, Arch; Envoy has no "system roots" of its own)
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
GETADDRINFO_RESOLVER = "envoy.network.dns_resolver.getaddrinfo"
AUTO_HOST_APPEND = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD


def cluster_name(ref: Ref, ext: ExternalService) -> str:
    return names.outbound_cluster(ref, ext.spec.protocol)


def _resolver() -> extension_pb2.TypedExtensionConfig:
    return extension_pb2.TypedExtensionConfig(
        name=GETADDRINFO_RESOLVER,
        typed_config=any_of(getaddrinfo_pb2.GetAddrInfoDnsResolverConfig()),
    )


def _endpoints(name: str, ext: ExternalService) -> endpoint_pb2.ClusterLoadAssignment:
    spec = ext.spec
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            ep_pb2.LocalityLbEndpoints(
                lb_endpoints=[
                    ep_pb2.LbEndpoint(
                        endpoint=ep_pb2.Endpoint(address=socket_address(a, spec.port))
                    )
                    for a in (spec.hosts or spec.addresses)
                ]
            )
        ],
    )


def _origination(ext: ExternalService) -> base_pb2.TransportSocket:
    """TLS the sidecar originates: SNI and the certificate's DNS SAN are ``server_name``."""
    server = ext.spec.server_name
    assert server is not None, "the model requires one name for https"
    tls = ext.spec.tls
    ca = (
        base_pb2.DataSource(inline_string=tls.ca)
        if tls is not None and tls.ca is not None
        else base_pb2.DataSource(filename=SYSTEM_CA_BUNDLE)
    )
    san = common_pb2.SubjectAltNameMatcher(
        san_type=common_pb2.SubjectAltNameMatcher.DNS,
        matcher=string_pb2.StringMatcher(exact=server),
    )
    context = tls_pb2.UpstreamTlsContext(
        sni=server,
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=common_pb2.TlsParameters(
                tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2
            ),
            validation_context=common_pb2.CertificateValidationContext(
                trusted_ca=ca, match_typed_subject_alt_names=[san]
            ),
            alpn_protocols=["http/1.1"],
        ),
    )
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=any_of(context))


def external_cluster(
    ref: Ref,
    ext: ExternalService,
    mesh: Mesh,
    policy: TrafficPolicy | None,
    name: str | None = None,
) -> cluster_pb2.Cluster:
    """The cluster of ``ext`` (endpoints inline: nothing about it changes with workloads),
    named ``name`` (default ``cluster_name``: an egress gateway names it otherwise)."""
    name = name or cluster_name(ref, ext)
    defaults = mesh.spec.defaults
    cluster = cluster_pb2.Cluster(
        name=name,
        connect_timeout=duration(defaults.connectTimeout),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        load_assignment=_endpoints(name, ext),
    )
    if ext.spec.hosts:
        cluster.type = cluster_pb2.Cluster.STRICT_DNS
        cluster.typed_dns_resolver_config.CopyFrom(_resolver())
        # IPv4 first, IPv6 when a name has no A record
        cluster.dns_lookup_family = cluster_pb2.Cluster.V4_PREFERRED
    else:
        cluster.type = cluster_pb2.Cluster.STATIC
    if ext.is_http:
        for k, v in upstream_protocol(http2=False, idle_timeout=defaults.idleTimeout).items():
            cluster.typed_extension_protocol_options[k].CopyFrom(v)
    if ext.spec.protocol == "https":
        cluster.transport_socket.CopyFrom(_origination(ext))
    apply_policy(cluster, policy, sidecars=False)
    return cluster


#: a request header a caller's sidecar adds for its egress gateway, on routes whose ``Host``
#: the gateway must rewrite to the resolved host name (several ``hosts``, no rule rewrite)
AUTO_HOST_HEADER = "x-gossamer-egress-auto-host"


def _host_header(routes: list[rc_pb2.Route], ext: ExternalService) -> None:
    """Send the ``Host`` the server expects, not the local address the app dialled: the
    SNI name, else the resolved host name; a rule's own ``rewrite.host`` wins. Through an
    egress gateway the one host name is a literal (the caller resolves only the gateway),
    and with several the gateway rewrites, told so by ``AUTO_HOST_HEADER``."""
    for route in routes:
        if not route.HasField("route") or route.route.host_rewrite_literal:
            continue
        if ext.spec.tls is not None and ext.spec.tls.sni is not None:
            route.route.host_rewrite_literal = ext.spec.tls.sni
        elif ext.spec.hosts and ext.gateway is None:
            route.route.auto_host_rewrite.value = True
        elif len(ext.spec.hosts) == 1:
            route.route.host_rewrite_literal = ext.spec.hosts[0]
        elif ext.spec.hosts:
            header = route.request_headers_to_add.add(append_action=AUTO_HOST_APPEND)
            header.header.key, header.header.value = AUTO_HOST_HEADER, "1"


def external_routes(
    ref: Ref,
    ext: ExternalService,
    routes: list[Route],
    mesh: Mesh,
    policy: TrafficPolicy | None,
) -> route_pb2.RouteConfiguration:
    """The route table callers of an HTTP external service share: the rules of its Routes
    (the model lets them send only to it), then everything else with the mesh defaults."""
    cluster = cluster_name(ref, ext)

    def cluster_of(d: Destination | Mirror, namespace: str) -> tuple[str, bool]:
        return cluster, False

    table = routes_for_rules(rule_entries(routes), cluster_of, mesh)
    table.append(
        default_route(
            cluster,
            mesh.spec.defaults.requestTimeout,
            grpc=False,
            retries=mesh.spec.defaults.retries,
        )
    )
    _host_header(table, ext)
    add_hash_policies(table, lambda name: policy if name == cluster else None)
    name = names.outbound_route(ref, ext.spec.protocol)
    return route_configuration(name, [(name, ["*"], table)])


def no_envoy_headers(hcm: hcm_pb2.HttpConnectionManager) -> None:
    """Out of the mesh the router adds no ``x-envoy-*`` headers (timeouts, attempt counts)."""
    for f in hcm.http_filters:
        if f.name == ROUTER_FILTER:
            router = router_pb2.Router()
            f.typed_config.Unpack(router)
            router.suppress_envoy_headers = True
            f.typed_config.Pack(router, deterministic=True)


def external_listener(
    ref: Ref,
    ext: ExternalService,
    address: str,
    port: int,
    mesh: Mesh,
) -> listener_pb2.Listener:
    """The dependency's listener at ``address:port``: HTTP by RDS, else a TCP proxy."""
    lname = names.outbound_listener(address, port)
    if ext.is_http:
        rds = names.outbound_route(ref, ext.spec.protocol)
        # (its rules' local rate-limit buckets come over ECDS: proxy.py adds them)
        hcm = http_connection_manager(lname, mesh, rds=rds)
        no_envoy_headers(hcm)
        return http_listener(lname, address, port, hcm, OUTBOUND)
    idle: timedelta = mesh.spec.defaults.idleTimeout
    return tcp_listener(lname, address, port, cluster_name(ref, ext), idle, OUTBOUND)


Egress = tuple[cluster_pb2.Cluster, route_pb2.RouteConfiguration | None, listener_pb2.Listener]


def external_resources(
    memo: Memo,
    snap: ModelSnapshot,
    ref: Ref,
    dep: Dependency,
    tls: TlsState = NO_TLS,
    tls_on: bool = False,
) -> Egress:
    """The cluster, route table (HTTP only) and listener a sidecar serves the dependency
    ``dep`` on the ExternalService ``ref`` with; callers share the cluster and table.
    Through an egress gateway the cluster leads there, with mTLS when this sidecar
    (``tls_on``) and the gateway (in ``tls.capable``) both can and the Mesh is not off."""
    ext = snap.external_services[ref]
    mesh = snap.mesh
    policy = snap.traffic_policy(ref)
    routes = snap.routes_for_service(ref)
    if ext.gateway is not None:
        mtls = tls_on and egress_via.gateway_mtls(snap, ext.gateway, tls)
        cluster = memo.get(
            "egress-via-cluster",
            (ref, ext, snap.gateways[ext.gateway], mesh, policy, mtls),
            lambda: egress_via.sidecar_cluster(ref, ext, snap, policy, mtls=mtls),
        )
    else:
        cluster = memo.get(
            "egress-cluster",
            (ref, ext, mesh, policy),
            lambda: external_cluster(ref, ext, mesh, policy),
        )
    table = (
        memo.get(
            "egress-routes",
            (ref, ext, tuple(routes), mesh, policy),
            lambda: external_routes(ref, ext, routes, mesh, policy),
        )
        if ext.is_http
        else None
    )
    address = dep.localAddress or snap.local_addresses[ref]
    port = dep.localPort or ext.spec.port
    listener = memo.get(
        "egress-listener",
        (ref, ext, address, port, mesh),
        lambda: external_listener(ref, ext, address, port, mesh),
    )
    return cluster, table, listener
