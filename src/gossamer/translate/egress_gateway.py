"""The egress gateway's side of ExternalServices routed through it (``spec.via``).

One listener per such service, at the Gateway's ``spec.address`` and the service's ``via``
port (default its external port), named ``egress|<ns>/<name>``: the same dedicated-port
shape as Istio's egress gateway and Kuma's ZoneEgress, so each listener carries exactly one
external service and a connection to the gateway can reach nothing else (an external
service not routed through it has no listener there: refused). Behind it the cluster a
sidecar would otherwise hold (``egress.external_cluster``, named
``egress|<ns>/<name>|<protocol>``): host names resolved by the gateway's host, TLS
originated here for ``https`` (SNI and verification as at a sidecar), bytes through for
``tls`` (passthrough: the app's own TLS) and ``tcp``, plain HTTP for ``http``; the
service's TrafficPolicy applies to it whole.

Callers arrive over the mesh: with mutual TLS (``egress_via.gateway_mtls``) the listener
requires a client certificate of the mesh naming exactly one workload id (as a sidecar's
inbound does), alone in ``strict`` and beside plaintext in ``permissive``, and of those only
the callers that depend on the service pass (``egress_callers``: network RBAC for tcp/tls,
whose TCP proxy connects out only once the caller's handshake is done; HTTP RBAC, a 403,
for http/https). HTTP requests are
routed without a timeout or retries of their own (the caller's route table has the rules,
timeouts and retries: doing them twice would multiply attempts), no ``x-envoy-*`` headers
go out, and no ``x-forwarded-client-cert`` (the caller's identity stays in the mesh).

With a telemetry service configured, an HTTP listener's HCM counts every request as the
gateway's own (``log_name`` ``gateway``: the client view of the hop gateway -> external
service) with the literal tags ``gossamer.destination: <ns>/<name>`` and
``gossamer.destination_kind: external`` (``translate.telemetry.outbound_tags``), in the
Mesh's ``telemetry.requests`` mode; the caller's sidecar reports its hop to the gateway.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2

from gossamer.model.external_service import ExternalService
from gossamer.model.gateway import Gateway
from gossamer.model.mesh import Mesh
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.translate import egress_callers, telemetry
from gossamer.translate.common import duration
from gossamer.translate.egress import AUTO_HOST_HEADER, external_cluster, no_envoy_headers
from gossamer.translate.egress_via import gateway_mtls
from gossamer.translate.hcm import http_connection_manager
from gossamer.translate.listeners import OUTBOUND, http_listener, tcp_listener
from gossamer.translate.memo import Memo
from gossamer.translate.routes import route_configuration
from gossamer.translate.telemetry_stats import request_log
from gossamer.translate.tls import (
    EARLY_DATA_BYTES,
    TlsState,
    accept_tls,
    downstream_socket,
    peer_id_filter,
)


def listener_name(ref: Ref) -> str:
    """The egress gateway's listener (and HCM stat prefix) for ExternalService ``ref``."""
    return f"egress|{ref[0]}/{ref[1]}"


def cluster_name(ref: Ref, ext: ExternalService) -> str:
    """The egress gateway's cluster of ExternalService ``ref``: its external endpoints."""
    return f"egress|{ref[0]}/{ref[1]}|{ext.spec.protocol}"


def routed_via(snap: ModelSnapshot, gateway: Ref) -> list[tuple[Ref, ExternalService]]:
    """The ExternalServices whose ``via`` names ``gateway``, by name."""
    return sorted(
        ((ref, ext) for ref, ext in snap.external_services.items() if ext.gateway == gateway),
        key=lambda pair: pair[0],
    )


def _routes(ref: Ref, ext: ExternalService) -> route_pb2.RouteConfiguration:
    """Everything to the external cluster; the resolved host name as ``Host`` where the
    caller asked for it (``AUTO_HOST_HEADER``, never sent on)."""
    cluster = cluster_name(ref, ext)

    def to_cluster() -> rc_pb2.RouteAction:
        # no timeout (0s) and no retries: the caller's route bounds and retries the request
        return rc_pb2.RouteAction(cluster=cluster, timeout=duration(timedelta(0)))

    auto = rc_pb2.Route(
        match=rc_pb2.RouteMatch(
            prefix="/",
            headers=[rc_pb2.HeaderMatcher(name=AUTO_HOST_HEADER, present_match=True)],
        ),
        route=to_cluster(),
    )
    auto.route.auto_host_rewrite.value = True
    rest = rc_pb2.Route(match=rc_pb2.RouteMatch(prefix="/"), route=to_cluster())
    name = listener_name(ref)
    table = route_configuration(name, [(name, ["*"], [auto, rest])])
    table.request_headers_to_remove.append(AUTO_HOST_HEADER)
    return table


def _checked(ref: Ref, f: lc_pb2.Filter, allowed: egress_callers.Callers) -> list[lc_pb2.Filter]:
    """The TLS chain's copy of the plaintext chain's filter ``f``, checking the caller:
    the HCM with the HTTP check first; the TCP proxy behind the network check, connecting
    out only once the caller's handshake is done (a client that fails it, or plaintext in
    ``strict``, opens no connection to the external server)."""
    copy = lc_pb2.Filter()
    copy.CopyFrom(f)
    hcm = hcm_pb2.HttpConnectionManager()
    if f.typed_config.Unpack(hcm):
        hcm.http_filters.insert(0, egress_callers.http_check(ref, allowed))
        copy.typed_config.Pack(hcm, deterministic=True)
        return [copy]
    proxy = tcp_proxy_pb2.TcpProxy()
    assert f.typed_config.Unpack(proxy), f.name
    proxy.upstream_connect_mode = tcp_proxy_pb2.ON_DOWNSTREAM_TLS_HANDSHAKE
    proxy.max_early_data_bytes.value = EARLY_DATA_BYTES
    copy.typed_config.Pack(proxy, deterministic=True)
    return [egress_callers.network_check(ref, allowed), copy]


def egress_listener(
    ref: Ref,
    ext: ExternalService,
    gw: Gateway,
    mesh: Mesh,
    *,
    mtls: bool,
    allowed: egress_callers.Callers = (),
    log: accesslog_pb2.AccessLog | None = None,
) -> listener_pb2.Listener:
    """The gateway's listener for ``ext``; with ``mtls`` callers' certificates are checked
    (plaintext refused in ``strict``) and only ``allowed`` (SPIFFE ids) pass; an HTTP one
    counts every request with ``log`` (``egress_log``)."""
    lname = listener_name(ref)
    port = ext.gateway_port
    assert port is not None
    if ext.is_http:
        hcm = http_connection_manager(lname, mesh, route_config=_routes(ref, ext))
        no_envoy_headers(hcm)
        if log is not None:
            hcm.access_log.append(log)
        listener = http_listener(lname, gw.spec.address, port, hcm, OUTBOUND)
    else:
        idle = mesh.spec.defaults.idleTimeout
        cluster = cluster_name(ref, ext)
        listener = tcp_listener(lname, gw.spec.address, port, cluster, idle, OUTBOUND)
    if mtls:
        domain = mesh.spec.trustDomain
        [plain] = listener.filter_chains
        filters = [peer_id_filter(domain)]
        for f in plain.filters:
            filters.extend(_checked(ref, f, allowed))
        socket = downstream_socket(domain, http=ext.is_http)
        accept_tls(listener, socket, filters, plaintext=mesh.spec.mtls.mode == "permissive")
    return listener


def egress_log(ref: Ref, ext: ExternalService, mesh: Mesh) -> accesslog_pb2.AccessLog | None:
    """The logger counting the requests of the gateway's listener for ``ext`` (HTTP only:
    TCP listeners are not counted, as at a sidecar)."""
    if not ext.is_http:
        return None
    return request_log(mesh, telemetry.GATEWAY, telemetry.outbound_tags(ref, external=True))


Pieces = list[tuple[cluster_pb2.Cluster, listener_pb2.Listener]]


def egress_resources(
    memo: Memo, snap: ModelSnapshot, gateway: Ref, tls: TlsState, *, counted: bool = False
) -> Pieces:
    """The (cluster, listener) of every ExternalService routed through ``gateway``; with
    ``counted`` (a telemetry service is configured) the HTTP listeners count requests."""
    gw = snap.gateways[gateway]
    mesh = snap.mesh
    mtls = gateway_mtls(snap, gateway, tls)
    out: Pieces = []
    for ref, ext in routed_via(snap, gateway):
        policy = snap.traffic_policy(ref)
        name = cluster_name(ref, ext)
        cluster = memo.get(
            "egress-gateway-cluster",
            (ref, ext, mesh, policy),
            lambda: external_cluster(ref, ext, mesh, policy, name),  # noqa: B023
        )
        allowed = egress_callers.callers(memo, snap, ref) if mtls else ()
        log = egress_log(ref, ext, mesh) if counted else None
        listener = memo.get(
            "egress-gateway-listener",
            (ref, ext, gw, mesh, mtls, allowed, log),
            partial(egress_listener, ref, ext, gw, mesh, mtls=mtls, allowed=allowed, log=log),
        )
        out.append((cluster, listener))
    return out
