"""A hand-written static mTLS chain of two Envoys: the reference the mTLS chain is held to.

What a careful operator would write by hand for the same job as Gossamer's two sidecars,
and nothing more: the front Envoy takes plaintext HTTP/1.1 from the client and sends
HTTP/2 over mTLS (ALPN ``h2``) to the back Envoy, checking the back's SPIFFE id; the back
requires a client certificate from the mesh CA (any SPIFFE id of the trust domain), hands
the caller's verified id to the app in ``x-forwarded-client-cert`` (replacing any a client
sent) and speaks HTTP/1.1 to the app. Certificates are inline in the static bootstraps:
no xDS, no SDS. Typed protobufs throughout (``gossamer.testing.resources``).
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.validate import FAIL_ON_DEPRECATED
from gossamer.testing.resources import (
    Address,
    http_listener,
    route_configuration,
    static_cluster,
)

TLS_SOCKET = "envoy.transport_sockets.tls"


@dataclass(frozen=True)
class Identity:
    """A certificate chain and its key (PEM), and the CA bundle to check peers against."""

    chain_pem: bytes
    key_pem: bytes
    trust_pem: bytes


def _common(
    me: Identity, peer: string_pb2.StringMatcher, alpn: list[str]
) -> tls_pb2.CommonTlsContext:
    context = tls_pb2.CommonTlsContext(alpn_protocols=alpn)
    context.tls_params.tls_minimum_protocol_version = common_pb2.TlsParameters.TLSv1_2
    cert = context.tls_certificates.add()
    cert.certificate_chain.inline_bytes = me.chain_pem
    cert.private_key.inline_bytes = me.key_pem
    validation = context.validation_context
    validation.trusted_ca.inline_bytes = me.trust_pem
    validation.match_typed_subject_alt_names.add(
        san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=peer
    )
    return context


def _bootstrap(name: str) -> bootstrap_pb2.Bootstrap:
    boot = bootstrap_pb2.Bootstrap()
    boot.node.id = name
    boot.node.cluster = name
    runtime = boot.layered_runtime.layers.add(name="static")
    runtime.static_layer.update({FAIL_ON_DEPRECATED: True})
    return boot


def front_bootstrap(
    listen: Address, back: Address, me: Identity, back_id: str
) -> bootstrap_pb2.Bootstrap:
    """The caller's Envoy: plaintext in, HTTP/2 over mTLS to ``back`` (which must be
    ``back_id``)."""
    boot = _bootstrap("static-front")
    routes = route_configuration("front-routes", {"*": "back"})
    boot.static_resources.listeners.append(http_listener("front-in", listen, routes))
    cluster = static_cluster("back", [back], http2=True)
    upstream = tls_pb2.UpstreamTlsContext(
        common_tls_context=_common(me, string_pb2.StringMatcher(exact=back_id), ["h2"])
    )
    cluster.transport_socket.CopyFrom(base_pb2.TransportSocket(name=TLS_SOCKET))
    cluster.transport_socket.typed_config.Pack(upstream)
    boot.static_resources.clusters.append(cluster)
    return boot


def back_bootstrap(
    listen: Address, app: Address, me: Identity, trust_domain: str
) -> bootstrap_pb2.Bootstrap:
    """The callee's Envoy: mTLS in (a client certificate of ``trust_domain`` required),
    the caller's id in ``x-forwarded-client-cert``, HTTP/1.1 to ``app``."""
    boot = _bootstrap("static-back")
    listener = http_listener("back-in", listen, route_configuration("back-routes", {"*": "app"}))
    chain = listener.filter_chains[0]
    hcm = hcm_pb2.HttpConnectionManager()
    chain.filters[0].typed_config.Unpack(hcm)
    hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
    hcm.set_current_client_cert_details.uri = True
    chain.filters[0].typed_config.Pack(hcm)
    peers = string_pb2.StringMatcher(prefix=f"spiffe://{trust_domain}/")
    downstream = tls_pb2.DownstreamTlsContext(
        common_tls_context=_common(me, peers, ["h2", "http/1.1"])
    )
    downstream.require_client_certificate.value = True
    chain.transport_socket.name = TLS_SOCKET
    chain.transport_socket.typed_config.Pack(downstream)
    boot.static_resources.listeners.append(listener)
    boot.static_resources.clusters.append(static_cluster("app", [app]))
    return boot


def static_envoy(boot: bootstrap_pb2.Bootstrap) -> EnvoyProcess:
    return EnvoyProcess(boot, concurrency=1, log_level="warning", name=boot.node.id)
