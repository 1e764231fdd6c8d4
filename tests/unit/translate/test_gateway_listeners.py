"""A Gateway's listeners with ``spec.tls``: a TLS filter chain per certificate chosen by
SNI, the strong TLS parameters, the redirect listener; and Envoy takes the result."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from shop import shop

from gossamer.envoy.validate import validate_config_sync
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.translate.bootstrap import sds_cluster, static_bootstrap
from gossamer.translate.names import (
    gateway_certificate_secret,
    gateway_listener,
    gateway_redirect_listener,
)
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.tls import STRONG_CIPHER_SUITES
from gossamer.types import API_VERSION, ProxyIdentity

GW = ProxyIdentity("gateway", "default", "edge")
REF = ("default", "edge")


def _with_tls(tls: dict[str, Any]) -> ModelSnapshot:
    gw = parse_manifest(
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {"port": 18000, "hosts": ["shop.example.com", "*"], "tls": tls},
        }
    )
    return shop().with_changes([gw])


SEVERAL = {
    "certificates": [
        {"hosts": ["shop.example.com"], "certificate": "/t/shop.pem", "privateKey": "/t/shop.key"},
        {"hosts": ["*.api.example"], "certificate": "/t/api.pem", "privateKey": "/t/api.key"},
    ],
    "httpsRedirect": True,
    "httpPort": 18080,
}


def _resources(tls: dict[str, Any]) -> ProxyResources:
    return Translator().proxy(_with_tls(tls), GW)


def _context(chain: Any) -> tls_pb2.DownstreamTlsContext:
    ctx = tls_pb2.DownstreamTlsContext()
    chain.transport_socket.typed_config.Unpack(ctx)
    return ctx


def test_one_chain_per_certificate_by_sni_and_the_first_serves_every_other_name() -> None:
    listener = _resources(SEVERAL).listeners[gateway_listener(REF)]
    chains = list(listener.filter_chains)
    assert [list(c.filter_chain_match.server_names) for c in chains] == [
        ["shop.example.com"],
        ["*.api.example"],
        [],
    ]
    secrets = [_context(c).common_tls_context.tls_certificate_sds_secret_configs for c in chains]
    assert [[s.name for s in ss] for ss in secrets] == [
        [gateway_certificate_secret("/t/shop.pem", "/t/shop.key")],
        [gateway_certificate_secret("/t/api.pem", "/t/api.key")],
        [gateway_certificate_secret("/t/shop.pem", "/t/shop.key")],
    ]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    common = _context(chains[0]).common_tls_context
    assert common.tls_params.tls_minimum_protocol_version == common_pb2.TlsParameters.TLSv1_2
    assert list(common.tls_params.cipher_suites) == list(STRONG_CIPHER_SUITES)
    assert list(common.alpn_protocols) == ["h2", "http/1.1"]
    assert not _context(chains[0]).HasField("require_client_certificate")
    # every chain runs the same edge connection manager
    assert len({c.filters[0].SerializeToString() for c in chains}) == 1


def test_one_certificate_is_one_chain_without_an_inspector() -> None:
    res = _resources({"certificate": "/t/a.pem", "privateKey": "/t/a.key"})
    listener = res.listeners[gateway_listener(REF)]
    assert len(listener.filter_chains) == 1 and not listener.listener_filters
    assert gateway_redirect_listener(REF) not in res.listeners


def test_the_redirect_listener_answers_every_gateway_host_with_https() -> None:
    listener = _resources(SEVERAL).listeners[gateway_redirect_listener(REF)]
    assert listener.address.socket_address.port_value == 18080
    [chain] = listener.filter_chains
    assert not chain.HasField("transport_socket")
    hcm = hcm_pb2.HttpConnectionManager()
    chain.filters[0].typed_config.Unpack(hcm)
    [vhost] = hcm.route_config.virtual_hosts
    assert list(vhost.domains) == ["shop.example.com", "*"]
    [route] = vhost.routes
    assert route.redirect.https_redirect and route.redirect.port_redirect == 18000
    assert hcm.strip_any_host_port  # the edge settings apply here too


def _sds_cluster() -> cluster_pb2.Cluster:
    """The agent's SDS cluster, as sidecar bootstraps have it, at a socket nobody serves."""
    return sds_cluster(Path("/tmp/gossamer-validate-sds.sock"))


@pytest.mark.integration
def test_a_tls_gateway_passes_envoy_validate() -> None:
    res = _resources(SEVERAL)
    listeners: list[listener_pb2.Listener] = list(res.listeners.values())
    bootstrap: bootstrap_pb2.Bootstrap = static_bootstrap(
        listeners=listeners,
        clusters=[*res.clusters.values(), _sds_cluster()],
        endpoints=res.endpoints.values(),
        routes=res.routes.values(),
        node=GW,
    )
    validate_config_sync(bootstrap, timeout_s=120.0)
