"""A gateway's listeners: the one clients connect to (plaintext, or terminating TLS), and
the plaintext one of ``tls.httpsRedirect``.

Certificates never appear here: each ``Gateway.spec.tls`` certificate is an SDS secret
named after its files (``names.gateway_certificate_secret``), which the gateway runner
reads on the gateway's host and serves over its SDS socket, re-reading them when they
change, so a renewed certificate reaches new connections without a restart.

A certificate listing ``hosts`` gets a filter chain matching those SNI names (a
``tls_inspector`` reads the name); the one without ``hosts`` (else the first) also gets the
chain for every other name and for clients sending none. TLS 1.2 and up with the strong
suites only (``tls.tls_params``), ALPN ``h2`` and ``http/1.1``; no client certificate.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2

from gossamer.model.gateway import Gateway, GatewayCertificate, GatewayTls
from gossamer.model.mesh import Mesh
from gossamer.model.snapshot import Ref
from gossamer.translate import names, telemetry, tracing
from gossamer.translate.common import any_of
from gossamer.translate.hcm import EDGE_CONNECTION_BUFFER_BYTES, Edge, http_connection_manager
from gossamer.translate.listeners import INBOUND, http_listener
from gossamer.translate.names import gateway_certificate_secret
from gossamer.translate.telemetry_stats import request_log
from gossamer.translate.tls import TLS_INSPECTOR, TLS_TRANSPORT_SOCKET, sds_secret, tls_params

#: what the gateway offers in ALPN: HTTP/2 first, HTTP/1.1 for the others
GATEWAY_ALPN = ("h2", "http/1.1")


def certificate_socket(entry: GatewayCertificate) -> base_pb2.TransportSocket:
    """Clients' TLS with ``entry``'s certificate (from the runner's SDS)."""
    secret = gateway_certificate_secret(entry.certificate, entry.privateKey)
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=tls_pb2.CommonTlsContext(
            tls_params=tls_params(),
            tls_certificate_sds_secret_configs=[sds_secret(secret)],
            alpn_protocols=list(GATEWAY_ALPN),
        )
    )
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=any_of(context))


def terminate_tls(listener: listener_pb2.Listener, tls: GatewayTls) -> None:
    """Make the gateway's one plaintext filter chain a TLS chain per certificate."""
    [plain] = listener.filter_chains
    entries = tls.entries()
    default = next((e for e in entries if e.hosts is None), entries[0])
    chains: list[lc_pb2.FilterChain] = []
    for entry in entries:
        if entry.hosts is None:
            continue
        chain = lc_pb2.FilterChain(
            filters=plain.filters, transport_socket=certificate_socket(entry)
        )
        chain.filter_chain_match.server_names.extend(entry.hosts)
        chains.append(chain)
    chains.append(
        lc_pb2.FilterChain(filters=plain.filters, transport_socket=certificate_socket(default))
    )
    listener.ClearField("filter_chains")
    listener.filter_chains.extend(chains)
    if len(chains) > 1:
        listener.listener_filters.append(
            lc_pb2.ListenerFilter(
                name=TLS_INSPECTOR, typed_config=any_of(tls_inspector_pb2.TlsInspector())
            )
        )


def redirect_routes(name: str, hosts: list[str], https_port: int) -> route_pb2.RouteConfiguration:
    """Every request for ``hosts``: 301 to the same URL over HTTPS on ``https_port``."""
    redirect = rc_pb2.RedirectAction(https_redirect=True)
    if https_port != 443:
        redirect.port_redirect = https_port
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            rc_pb2.VirtualHost(
                name=name,
                domains=hosts,
                routes=[rc_pb2.Route(match=rc_pb2.RouteMatch(prefix="/"), redirect=redirect)],
            )
        ],
    )


def gateway_listeners(
    ref: Ref, gw: Gateway, mesh: Mesh, *, access_logs: Sequence[accesslog_pb2.AccessLog] = ()
) -> dict[str, listener_pb2.Listener]:
    """The gateway's listener on ``spec.port`` routing by RDS (``names.gateway_route``),
    terminating TLS when ``spec.tls`` says so, and the redirecting one on ``tls.httpPort``.
    Both are edge listeners (``hcm.Edge``); the local rate limits of the gateway's rules
    are the ECDS resource ``rate_limit.extension_config`` of the first's HCM, which also
    logs to ``access_logs`` (the telemetry's: the redirects reach no service)."""
    edge = Edge(trusted_hops=gw.spec.trustedHops)
    lname = names.gateway_listener(ref)
    rds = names.gateway_route(ref)
    hcm = http_connection_manager(lname, mesh, rds=rds, edge=edge)
    hcm.access_log.extend(access_logs)
    main = http_listener(lname, gw.spec.address, gw.spec.port, hcm, INBOUND)
    out = {lname: main}
    tls = gw.spec.tls
    if tls is not None:
        terminate_tls(main, tls)
    if tls is not None and tls.httpsRedirect and tls.httpPort is not None:
        rname = names.gateway_redirect_listener(ref)
        table = redirect_routes(rname, gw.spec.hosts, gw.spec.port)
        hcm = http_connection_manager(rname, mesh, route_config=table, edge=edge)
        out[rname] = http_listener(rname, gw.spec.address, tls.httpPort, hcm, INBOUND)
    for listener in out.values():
        # Envoy's edge guidance: bound what one client connection may make Envoy buffer.
        listener.per_connection_buffer_limit_bytes.value = EDGE_CONNECTION_BUFFER_BYTES
    return out


def counted_gateway_listeners(
    ref: Ref, gw: Gateway, mesh: Mesh, counted: bool
) -> dict[str, listener_pb2.Listener]:
    """A gateway's own listeners (``counted``: telemetry is on, every request logged, and
    the main listener starts each trace when tracing is on)."""
    logs = [request_log(mesh, telemetry.GATEWAY)] if counted else []
    listeners = gateway_listeners(ref, gw, mesh, access_logs=logs)
    if counted and tracing.on(mesh):  # the trace's root
        main = names.gateway_listener(ref)
        listeners[main] = tracing.traced_listener(
            listeners[main], telemetry.CLUSTER, f"{ref[0]}/{ref[1]}", upstream_span=True
        )
    return listeners
