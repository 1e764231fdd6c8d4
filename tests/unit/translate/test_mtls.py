"""mTLS in translation: each mode's inbound listener, the callers' clusters and the EDS mark."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from google.protobuf import json_format
from shop import shop

from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.model.snapshot import Ref
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.tls import TlsState, accepts_tls
from gossamer.types import API_VERSION, ProxyIdentity

TD = "shop.local"
WEB, REVIEWS_1, REVIEWS_2, DB = (
    ("default", "web-1"),
    ("default", "reviews-1"),
    ("default", "reviews-2"),
    ("default", "db-1"),
)
EVERY_SIDECAR = frozenset(
    f"sidecar~default~{n}" for n in ("web-1", "reviews-1", "reviews-2", "ratings-1", "db-1")
)
CAPABLE = frozenset({*EVERY_SIDECAR, "gateway~default~edge"})


def mesh(mode: str, **services: str) -> ModelSnapshot:
    """The shop with a Mesh of ``mode``, and per-service overrides ``name=mode``."""
    snap = shop()
    puts = [
        parse_manifest(
            {
                "apiVersion": API_VERSION,
                "kind": "Mesh",
                "metadata": {"name": "default"},
                "spec": {"trustDomain": TD, "mtls": {"mode": mode}},
            }
        )
    ]
    for name, m in services.items():
        manifest = snap.services[("default", name)].to_manifest()
        manifest["spec"]["mtls"] = {"mode": m}
        puts.append(parse_manifest(manifest))
    return snap.with_changes(puts)


def sidecar(snap: ModelSnapshot, name: str, tls: TlsState) -> ProxyResources:
    return Translator().proxy(snap, ProxyIdentity("sidecar", "default", name), tls)


WORKLOAD_RE = r"^spiffe://shop\.local/ns/[^/,]+/sa/[^/,]+$"


def state(
    *, ready: frozenset[Ref] = frozenset(), enforced: frozenset[Ref] = frozenset()
) -> TlsState:
    return TlsState(CAPABLE, ready | enforced, enforced)


def downstream(chain: listener_pb2.FilterChain) -> tls_pb2.DownstreamTlsContext:
    assert chain.transport_socket.name == "envoy.transport_sockets.tls"
    out = tls_pb2.DownstreamTlsContext()
    assert chain.transport_socket.typed_config.Unpack(out)
    return out


def hcm(chain: listener_pb2.FilterChain) -> hcm_pb2.HttpConnectionManager:
    f = chain.filters[-1]  # a TLS chain checks the peer's id first (peer_id_filter)
    out = hcm_pb2.HttpConnectionManager()
    assert f.typed_config.Unpack(out)
    return out


def sds(common: tls_pb2.CommonTlsContext) -> dict[str, Any]:
    """What a TLS context asks of SDS, as JSON: secret names and the cluster they come from."""
    [cert] = common.tls_certificate_sds_secret_configs
    bundle = common.combined_validation_context.validation_context_sds_secret_config
    return {
        "identity": cert.name,
        "bundle": bundle.name,
        "clusters": {
            c.sds_config.api_config_source.grpc_services[0].envoy_grpc.cluster_name
            for c in (cert, bundle)
        },
        "api": {c.sds_config.api_config_source.api_type for c in (cert, bundle)},
    }


def san(common: tls_pb2.CommonTlsContext) -> dict[str, Any]:
    [m] = (
        common.combined_validation_context.default_validation_context.match_typed_subject_alt_names
    )
    assert m.san_type == common_pb2.SubjectAltNameMatcher.URI
    return json_format.MessageToDict(m.matcher)


def test_a_proxy_that_cannot_get_secrets_gets_no_tls_even_in_a_strict_mesh() -> None:
    snap = mesh("strict")
    res = sidecar(snap, "web-1", TlsState(frozenset(), frozenset({REVIEWS_1}), frozenset()))
    [chain] = res.listeners["inbound|http"].filter_chains
    assert not chain.HasField("transport_socket")
    assert not res.listeners["inbound|http"].listener_filters
    assert all(not c.transport_socket_matches for c in res.clusters.values())
    assert not accepts_tls(res.listeners)


def test_permissive_inbound_takes_mtls_and_plaintext_on_two_chains() -> None:
    res = sidecar(mesh("permissive"), "reviews-1", state())
    listener = res.listeners["inbound|http"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    assert listener.continue_on_listener_filters_timeout
    tls_chain, plain = listener.filter_chains
    assert tls_chain.filter_chain_match.transport_protocol == "tls"
    assert plain.filter_chain_match.transport_protocol == "raw_buffer"
    assert not plain.HasField("transport_socket")
    ctx = downstream(tls_chain)
    assert ctx.require_client_certificate.value is True
    common = ctx.common_tls_context
    assert common.tls_params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_2
    assert list(common.alpn_protocols) == ["h2", "http/1.1"]
    assert sds(common) == {
        "identity": "identity",
        "bundle": "trust-bundle",
        "clusters": {"gossamer-sds"},
        "api": {config_source_pb2.ApiConfigSource.GRPC},
    }
    assert san(common) == {"safeRegex": {"regex": WORKLOAD_RE}}
    # ... and the peer's URI SANs must be exactly one such id, on the TLS chain only
    assert tls_chain.filters[0].name == "envoy.filters.network.rbac"
    assert [f.name for f in plain.filters] == ["envoy.filters.network.http_connection_manager"]
    # The app hears who called over TLS; on plaintext a client's XFCC is stripped.
    secured = hcm(tls_chain)
    assert secured.forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE_SET
    assert secured.set_current_client_cert_details.uri is True
    assert hcm(plain).forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE
    assert not hcm(plain).HasField("set_current_client_cert_details")
    assert accepts_tls(res.listeners)


def test_strict_accepts_plaintext_until_every_caller_sends_mtls_then_only_tls() -> None:
    snap = mesh("strict")
    before = sidecar(snap, "reviews-1", state(ready=frozenset({REVIEWS_1})))
    assert len(before.listeners["inbound|http"].filter_chains) == 2
    after = sidecar(snap, "reviews-1", state(enforced=frozenset({REVIEWS_1})))
    listener = after.listeners["inbound|http"]
    [chain] = listener.filter_chains
    assert not listener.listener_filters
    assert not chain.HasField("filter_chain_match")
    assert downstream(chain).require_client_certificate.value is True
    assert hcm(chain).forward_client_cert_details == hcm_pb2.HttpConnectionManager.SANITIZE_SET


def test_off_is_plaintext_and_a_service_overrides_the_mesh() -> None:
    off = sidecar(mesh("off"), "reviews-1", state(enforced=frozenset({REVIEWS_1})))
    [chain] = off.listeners["inbound|http"].filter_chains
    assert not chain.HasField("transport_socket")
    assert not accepts_tls(off.listeners)
    snap = mesh("strict", reviews="off", db="strict")
    assert not accepts_tls(sidecar(snap, "reviews-1", state()).listeners)
    snap = mesh("off", reviews="strict")
    res = sidecar(snap, "reviews-1", state(enforced=frozenset({REVIEWS_1})))
    [chain] = res.listeners["inbound|http"].filter_chains
    assert downstream(chain).require_client_certificate.value is True


def test_tcp_services_get_mtls_on_their_tcp_proxy_chain() -> None:
    res = sidecar(mesh("strict"), "db-1", state(enforced=frozenset({DB})))
    [chain] = res.listeners["inbound|tcp"].filter_chains
    peer_check, f = chain.filters
    assert peer_check.name == "envoy.filters.network.rbac"
    assert f.typed_config.Is(tcp_proxy_pb2.TcpProxy.DESCRIPTOR)
    common = downstream(chain).common_tls_context
    assert list(common.alpn_protocols) == []
    assert san(common) == {"safeRegex": {"regex": WORKLOAD_RE}}


def upstream(cluster: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext:
    [match] = cluster.transport_socket_matches
    assert match.name == "mtls"
    assert json_format.MessageToDict(match.match) == {"tls": "mtls"}
    out = tls_pb2.UpstreamTlsContext()
    assert match.transport_socket.typed_config.Unpack(out)
    return out


def test_callers_clusters_send_mtls_to_marked_endpoints_verifying_the_callee() -> None:
    res = sidecar(mesh("permissive"), "web-1", state())
    reviews = [n for n in res.clusters if n.startswith("outbound|default/reviews|")]
    assert len(reviews) == 3  # the service and its two subsets
    for name in reviews:
        cluster = res.clusters[name]
        assert not cluster.HasField("transport_socket")  # unmarked endpoints: plaintext
        common = upstream(cluster).common_tls_context
        assert san(common) == {"exact": f"spiffe://{TD}/ns/default/sa/reviews"}
        assert list(common.alpn_protocols) == ["h2"]
        assert sds(common)["identity"] == "identity"
    db = upstream(res.clusters["outbound|default/db|tcp"]).common_tls_context
    assert san(db) == {"exact": f"spiffe://{TD}/ns/default/sa/db"}
    assert list(db.alpn_protocols) == []


def test_no_mtls_match_to_a_service_that_is_off() -> None:
    res = sidecar(mesh("strict", reviews="off"), "web-1", state())
    assert not res.clusters["outbound|default/reviews|http"].transport_socket_matches
    assert res.clusters["outbound|default/ratings|grpc"].transport_socket_matches


def marks(res: ProxyResources, cluster: str) -> dict[str, Any]:
    out = {}
    for group in res.endpoints[cluster].endpoints:
        for ep in group.lb_endpoints:
            meta = json_format.MessageToDict(ep.metadata)
            out[ep.endpoint.hostname] = meta.get("filterMetadata", {}).get(
                "envoy.transport_socket_match"
            )
    return out


@pytest.mark.parametrize("mode", ["permissive", "strict"])
def test_eds_marks_only_endpoints_whose_sidecar_is_ready(mode: str) -> None:
    res = sidecar(mesh(mode), "web-1", state(ready=frozenset({REVIEWS_1})))
    assert marks(res, "outbound|default/reviews|http") == {
        "reviews-1": {"tls": "mtls"},
        "reviews-2": None,
    }
    assert marks(res, "outbound|default/reviews|http|version=v1") == {"reviews-1": {"tls": "mtls"}}


def test_no_mark_for_a_service_that_is_off_even_when_ready() -> None:
    res = sidecar(mesh("strict", reviews="off"), "web-1", state(ready=frozenset({REVIEWS_1})))
    assert marks(res, "outbound|default/reviews|http") == {"reviews-1": None, "reviews-2": None}


def test_gateways_send_mtls_too() -> None:
    snap = mesh("permissive")
    res = Translator().proxy(snap, ProxyIdentity("gateway", "default", "edge"), state())
    assert upstream(res.clusters["outbound|default/web|http"])
    assert not accepts_tls(res.listeners)  # its listener faces clients outside the mesh


def test_one_translator_follows_tls_state_changes() -> None:
    """Memoised pieces are keyed by what they depend on: a new mark is never missed."""
    snap = mesh("permissive")
    translator = Translator()
    web = ProxyIdentity("sidecar", "default", "web-1")
    first = translator.proxy(snap, web, state())
    second = translator.proxy(snap, web, state(ready=frozenset({REVIEWS_2})))
    third = translator.proxy(snap, web, TlsState())
    assert marks(first, "outbound|default/reviews|http")["reviews-2"] is None
    assert marks(second, "outbound|default/reviews|http")["reviews-2"] == {"tls": "mtls"}
    assert not third.clusters["outbound|default/reviews|http"].transport_socket_matches
    assert (
        translator.proxy(snap, web, state()).endpoints == first.endpoints
        and translator.proxy(snap, web, state()).clusters == first.clusters
    )


def test_web_is_untouched_by_default_state() -> None:
    res = sidecar(mesh("permissive"), "web-1", TlsState())
    assert marks(res, "outbound|default/reviews|http") == {"reviews-1": None, "reviews-2": None}
    assert WEB in mesh("off").workloads
