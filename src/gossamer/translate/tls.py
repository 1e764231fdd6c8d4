"""Mutual TLS between the mesh's Envoys: the pieces listeners, clusters and endpoints use.

Certificates never appear here: Envoy gets its own (``identity``) and the mesh's trusted CAs
(``trust-bundle``) from its local agent over SDS (the bootstrap's ``gossamer-sds`` cluster).

A caller sends mTLS to an endpoint only when EDS marks it (``TLS_MARK``); the control plane
marks an endpoint once its sidecar ACKed an inbound listener that accepts TLS (``TlsState``),
so turning mTLS on fails no request. A ``strict`` sidecar refuses plaintext only once every
caller reaches it over mTLS (``TlsState.enforced``); until then it accepts both.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.config.listener.v3 import listener_components_pb2 as lc_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.rbac.v3 import rbac_pb2
from envoy.extensions.filters.listener.tls_inspector.v3 import tls_inspector_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as net_rbac_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.matching.common_inputs.ssl.v3 import ssl_inputs_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2, tls_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from xds.core.v3 import extension_pb2
from xds.type.matcher.v3 import matcher_pb2 as xds_matcher_pb2
from xds.type.matcher.v3 import regex_pb2 as xds_regex_pb2
from xds.type.matcher.v3 import string_pb2 as xds_string_pb2

from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.tls import MtlsMode
from gossamer.translate.common import any_of, struct
from gossamer.translate.names import IDENTITY_SECRET, SDS_CLUSTER, TRUST_BUNDLE_SECRET
from gossamer.types import spiffe_id

TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"
TLS_INSPECTOR = "envoy.filters.listener.tls_inspector"
NETWORK_RBAC = "envoy.filters.network.rbac"
URI_SAN_INPUT = "envoy.matching.inputs.uri_san"
#: the stat prefix of the inbound TLS chain's identity check (``<it>rbac.denied``)
PEER_CHECK_STATS = "inbound_peer_id."
#: what an inbound TCP proxy buffers from a client until its app is connected
EARLY_DATA_BYTES = 64 * 1024
#: the endpoint metadata filter Envoy matches ``transport_socket_matches`` against
TRANSPORT_SOCKET_MATCH = "envoy.transport_socket_match"
#: an endpoint whose sidecar accepts mTLS carries this under ``TRANSPORT_SOCKET_MATCH``
TLS_MARK: Mapping[str, str] = {"tls": "mtls"}
#: the name of the clusters' transport socket match that sends mTLS
MTLS_MATCH = "mtls"
#: what a sidecar's inbound offers in ALPN: HTTP/2 between sidecars, HTTP/1.1 for others
INBOUND_ALPN = ("h2", "http/1.1")
#: TLS 1.2 suites every Gossamer TLS context allows (sidecars both ways, the gateway):
#: ECDHE key exchange (forward secrecy) and AEAD ciphers only: no CBC, no RSA key exchange,
#: no NULL/EXPORT/RC4/3DES. Envoy 1.40's defaults are these already; spelled out so a
#: change of Envoy's defaults cannot widen them. TLS 1.3 suites are AEAD-only by design.
STRONG_CIPHER_SUITES = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
)


@dataclass(frozen=True)
class TlsState:
    """What the control plane knows of proxies' TLS: plain data, passed in like the model.

    ``capable``: node ids of proxies whose Envoy gets secrets over SDS (its bootstrap has
    ``gossamer-sds``); only they are given TLS (anything referring to SDS would keep an
    Envoy without it warming). ``ready``: workloads whose sidecar ACKed an inbound listener
    accepting mTLS; their endpoints carry ``TLS_MARK``. ``enforced`` (a subset of
    ``ready``): those every capable proxy holding their endpoints has ACKed with the mark;
    a ``strict`` one may now refuse plaintext.
    """

    capable: frozenset[str] = frozenset()
    ready: frozenset[Ref] = frozenset()
    enforced: frozenset[Ref] = frozenset()


NO_TLS = TlsState()


def mode_of(snap: ModelSnapshot, service: Ref) -> MtlsMode:
    """The mTLS mode of ``service``'s sidecars: its own, or else the Mesh's."""
    return snap.services[service].mtls_mode(snap.mesh.spec.mtls.mode)


def tls_params() -> common_pb2.TlsParameters:
    """TLS 1.2 at least, ``STRONG_CIPHER_SUITES`` only."""
    return common_pb2.TlsParameters(
        tls_minimum_protocol_version=common_pb2.TlsParameters.TLSv1_2,
        cipher_suites=list(STRONG_CIPHER_SUITES),
    )


def sds_secret(name: str) -> secret_pb2.SdsSecretConfig:
    """Secret ``name`` from the host's SDS server (the bootstrap's ``gossamer-sds``)."""
    source = config_source_pb2.ConfigSource(
        api_config_source=config_source_pb2.ApiConfigSource(
            api_type=config_source_pb2.ApiConfigSource.GRPC,
            transport_api_version=config_source_pb2.V3,
            grpc_services=[
                grpc_service_pb2.GrpcService(
                    envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
                )
            ],
        ),
        resource_api_version=config_source_pb2.V3,
    )
    return secret_pb2.SdsSecretConfig(name=name, sds_config=source)


def _common(peer: string_pb2.StringMatcher, alpn: tuple[str, ...]) -> tls_pb2.CommonTlsContext:
    """Our certificate, and a peer checked against the trust bundle and ``peer`` (URI SAN)."""
    san = common_pb2.SubjectAltNameMatcher(
        san_type=common_pb2.SubjectAltNameMatcher.URI, matcher=peer
    )
    return tls_pb2.CommonTlsContext(
        tls_params=tls_params(),
        tls_certificate_sds_secret_configs=[sds_secret(IDENTITY_SECRET)],
        combined_validation_context=tls_pb2.CommonTlsContext.CombinedCertificateValidationContext(
            default_validation_context=common_pb2.CertificateValidationContext(
                match_typed_subject_alt_names=[san]
            ),
            validation_context_sds_secret_config=sds_secret(TRUST_BUNDLE_SECRET),
        ),
        alpn_protocols=list(alpn),
    )


def workload_id_regex(trust_domain: str) -> str:
    """RE2 for exactly one workload SPIFFE id of ``trust_domain``
    (``spiffe://<td>/ns/<ns>/sa/<name>``; no comma: Envoy joins several URI SANs with one)."""
    return f"^spiffe://{re.escape(trust_domain)}/ns/[^/,]+/sa/[^/,]+$"


def downstream_socket(trust_domain: str, *, http: bool) -> base_pb2.TransportSocket:
    """A sidecar's inbound TLS: a client certificate is required, issued by the mesh's
    trust bundle, with a URI SAN that is a workload id of this trust domain (Envoy checks
    that *some* SAN matches; ``peer_id_filter`` then requires it to be the only one)."""
    workload = string_pb2.StringMatcher(
        safe_regex=regex_pb2.RegexMatcher(regex=workload_id_regex(trust_domain))
    )
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=_common(workload, INBOUND_ALPN if http else ()),
    )
    context.require_client_certificate.value = True
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=any_of(context))


def _rbac_action(name: str, action: int) -> xds_matcher_pb2.Matcher.OnMatch:
    return xds_matcher_pb2.Matcher.OnMatch(
        action=extension_pb2.TypedExtensionConfig(
            name=name, typed_config=any_of(rbac_pb2.Action(name=name, action=action))
        )
    )


def peer_id_filter(trust_domain: str) -> lc_pb2.Filter:
    """A network RBAC filter for an inbound TLS chain: the client certificate's URI SANs,
    all of them (``UriSanInput`` joins them with commas), must be exactly one workload id
    of ``trust_domain``; any other connection is closed before a byte reaches the app.

    The TLS context's SAN matcher accepts a certificate if *any* URI SAN matches, so a
    certificate naming a foreign id first and ours second passes it, and the app would be
    told the first one in ``x-forwarded-client-cert``. A SPIFFE SVID has exactly one URI
    SAN; this enforces it."""
    predicate = xds_matcher_pb2.Matcher.MatcherList.Predicate(
        single_predicate=xds_matcher_pb2.Matcher.MatcherList.Predicate.SinglePredicate(
            input=extension_pb2.TypedExtensionConfig(
                name=URI_SAN_INPUT, typed_config=any_of(ssl_inputs_pb2.UriSanInput())
            ),
            value_match=xds_string_pb2.StringMatcher(
                safe_regex=xds_regex_pb2.RegexMatcher(
                    google_re2=xds_regex_pb2.RegexMatcher.GoogleRE2(),
                    regex=workload_id_regex(trust_domain),
                )
            ),
        )
    )
    matcher = xds_matcher_pb2.Matcher(
        matcher_list=xds_matcher_pb2.Matcher.MatcherList(
            matchers=[
                xds_matcher_pb2.Matcher.MatcherList.FieldMatcher(
                    predicate=predicate, on_match=_rbac_action("workload-id", rbac_pb2.RBAC.ALLOW)
                )
            ]
        ),
        on_no_match=_rbac_action("not-one-workload-id", rbac_pb2.RBAC.DENY),
    )
    rbac = net_rbac_pb2.RBAC(stat_prefix=PEER_CHECK_STATS, matcher=matcher)
    return lc_pb2.Filter(name=NETWORK_RBAC, typed_config=any_of(rbac))


def upstream_socket(peer_id: str, *, http2: bool) -> base_pb2.TransportSocket:
    """A caller's TLS to one service: our identity, and the callee must be ``peer_id``."""
    exact = string_pb2.StringMatcher(exact=peer_id)
    context = tls_pb2.UpstreamTlsContext(
        common_tls_context=_common(exact, ("h2",) if http2 else ())
    )
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=any_of(context))


def control_plane_socket(peer: string_pb2.StringMatcher) -> base_pb2.TransportSocket:
    """An agent-run Envoy's mTLS to the xDS server: its workload identity, and the server's
    URI SAN must match ``peer`` (ALPN h2: xDS is gRPC)."""
    context = tls_pb2.UpstreamTlsContext(common_tls_context=_common(peer, ("h2",)))
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=any_of(context))


def add_mtls_match(
    cluster: cluster_pb2.Cluster, snap: ModelSnapshot, service: Ref, *, http2: bool
) -> None:
    """Let ``cluster`` send mTLS to endpoints marked ``TLS_MARK`` (plaintext stays the
    default transport socket, for endpoints not marked yet)."""
    peer = spiffe_id(snap.mesh.spec.trustDomain, *service)
    cluster.transport_socket_matches.append(
        cluster_pb2.Cluster.TransportSocketMatch(
            name=MTLS_MATCH,
            match=struct(dict(TLS_MARK)),
            transport_socket=upstream_socket(peer, http2=http2),
        )
    )


def mark_endpoint(metadata: base_pb2.Metadata) -> None:
    metadata.filter_metadata[TRANSPORT_SOCKET_MATCH].CopyFrom(struct(dict(TLS_MARK)))


def accept_tls(
    listener: listener_pb2.Listener,
    socket: base_pb2.TransportSocket,
    tls_filters: list[lc_pb2.Filter],
    *,
    plaintext: bool,
) -> None:
    """Make ``listener``'s one (plaintext) filter chain take TLS with ``socket`` and run
    ``tls_filters``; with ``plaintext`` the old chain stays for clients without TLS (a
    ``tls_inspector`` tells the two apart)."""
    [plain] = listener.filter_chains
    tls_chain = lc_pb2.FilterChain(filters=tls_filters, transport_socket=socket)
    if not plaintext:
        listener.ClearField("filter_chains")
        listener.filter_chains.append(tls_chain)
        return
    tls_chain.filter_chain_match.transport_protocol = "tls"
    plain.filter_chain_match.transport_protocol = "raw_buffer"
    listener.filter_chains.insert(0, tls_chain)
    listener.listener_filters.append(
        lc_pb2.ListenerFilter(
            name=TLS_INSPECTOR, typed_config=any_of(tls_inspector_pb2.TlsInspector())
        )
    )
    # A protocol whose server speaks first (SMTP, MySQL) sends the inspector nothing to
    # look at: after the timeout it is served as plaintext rather than closed.
    listener.continue_on_listener_filters_timeout = True


def accepts_tls(listeners: Mapping[str, listener_pb2.Listener]) -> bool:
    """Does every inbound listener of a sidecar take TLS? (what readiness waits for)"""
    inbound = [lst for lst in listeners.values() if lst.traffic_direction == base_pb2.INBOUND]
    return bool(inbound) and all(
        any(chain.HasField("transport_socket") for chain in lst.filter_chains) for lst in inbound
    )


def _client_cert_details(hcm: hcm_pb2.HttpConnectionManager) -> hcm_pb2.HttpConnectionManager:
    """``hcm`` for the TLS chain: the app gets the verified caller's SPIFFE id in
    ``x-forwarded-client-cert``, and whatever a client sent in that header is replaced."""
    out = hcm_pb2.HttpConnectionManager()
    out.CopyFrom(hcm)
    out.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE_SET
    out.set_current_client_cert_details.uri = True
    return out


def _after_handshake(f: lc_pb2.Filter) -> tcp_proxy_pb2.TcpProxy:
    """``f``'s TCP proxy for the TLS chain, connecting to the app only once the client's
    handshake is done: by default it connects as the client is accepted, so every
    plaintext or foreign-CA client of a STRICT sidecar opened a connection to the app
    (and a server-first app greeted into it) before the handshake failed."""
    proxy = tcp_proxy_pb2.TcpProxy()
    f.typed_config.Unpack(proxy)
    proxy.upstream_connect_mode = tcp_proxy_pb2.ON_DOWNSTREAM_TLS_HANDSHAKE
    # Envoy requires a bound on what it buffers from the client meanwhile
    proxy.max_early_data_bytes.value = EARLY_DATA_BYTES
    return proxy


def secure_inbound(
    listener: listener_pb2.Listener, mode: MtlsMode, trust_domain: str, *, enforced: bool
) -> None:
    """Give a sidecar's plaintext inbound ``listener`` what ``mode`` asks: ``off`` keeps it;
    ``permissive`` adds a TLS chain beside the plaintext one; ``strict`` keeps only the TLS
    chain once ``enforced`` (every caller sends mTLS), and both until then. The TLS chain
    is the same in both modes: a client certificate from the trust bundle naming exactly
    one workload id of ``trust_domain`` (``peer_id_filter``).

    On plaintext an HTTP listener strips any ``x-forwarded-client-cert`` a client sent.
    """
    if mode == "off":
        return
    [plain] = listener.filter_chains
    [f] = plain.filters
    hcm = hcm_pb2.HttpConnectionManager()
    http = f.typed_config.Is(hcm.DESCRIPTOR)
    tls_filter = lc_pb2.Filter()
    tls_filter.CopyFrom(f)
    if http:
        f.typed_config.Unpack(hcm)
        hcm.forward_client_cert_details = hcm_pb2.HttpConnectionManager.SANITIZE
        f.typed_config.Pack(hcm, deterministic=True)
        tls_filter.typed_config.Pack(_client_cert_details(hcm), deterministic=True)
    elif f.typed_config.Is(tcp_proxy_pb2.TcpProxy.DESCRIPTOR):
        tls_filter.typed_config.Pack(_after_handshake(f), deterministic=True)
    socket = downstream_socket(trust_domain, http=http)
    accept_tls(
        listener,
        socket,
        [peer_id_filter(trust_domain), tls_filter],
        plaintext=mode == "permissive" or not enforced,
    )
