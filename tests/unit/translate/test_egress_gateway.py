"""ExternalService ``via: {gateway}``: validation (the Gateway must exist, its port must be
free), the caller's cluster leading to the gateway (mTLS with the gateway's SPIFFE id when
both hold identities), the gateway's dedicated listener and originating cluster (none for
an external service not routed through it), and every config passing
``envoy --mode validate`` in each mTLS mode."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from shop import shop
from test_proxy_validate import _sds_cluster
from translate_helpers import hcm_of, tcp_proxy_of

from gossamer.envoy.validate import validate_config_sync
from gossamer.model import ModelSnapshot, check_references, parse_yaml
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.egress import AUTO_HOST_HEADER
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.tls import TlsState
from gossamer.types import ProxyIdentity

MESH = """
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {name: default}
spec: {trustDomain: shop.local, mtls: {mode: MODE}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {name: egress}
spec: {address: 127.0.0.30, port: 8000}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: payments}
spec: {hosts: [pay.example.com], port: 443, protocol: https, via: {gateway: egress}}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: mirrors}
spec: {hosts: [a.example.com, b.example.com], port: 80, protocol: http, via: {gateway: egress}}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: ledger}
spec: {addresses: [198.51.100.5], port: 5432, protocol: tcp, via: {gateway: egress, port: 15432}}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: weather}
spec: {hosts: [weather.example.com], port: 8080, protocol: http}
---
apiVersion: gossamer.dev/v1
kind: TrafficPolicy
metadata: {name: payments}
spec:
  service: payments
  circuitBreaker: {maxRequests: 7}
  outlierDetection: {consecutive5xx: 2}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: out-1}
spec:
  service: web
  address: 127.0.0.20
  ports: [{port: 15001, appPort: 18080}]
  dependencies: [{service: payments}, {service: mirrors}, {service: ledger}, {service: weather}]
"""
OUT = ProxyIdentity("sidecar", "default", "out-1")
GW = ProxyIdentity("gateway", "default", "egress")
BOTH = TlsState(capable=frozenset({OUT.node_id, GW.node_id}))


def snapshot(mode: str = "permissive", text: str = MESH) -> ModelSnapshot:
    snap = shop().with_changes(parse_yaml(text.replace("MODE", mode), "egress.yaml"))
    assert check_references(snap) == []
    return snap


def translate(snap: ModelSnapshot, tls: TlsState) -> tuple[ProxyResources, ProxyResources]:
    translator = Translator()
    return translator.proxy(snap, OUT, tls), translator.proxy(snap, GW, tls)


def _upstream_tls(c: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext:
    out = tls_pb2.UpstreamTlsContext()
    assert c.transport_socket.typed_config.Unpack(out)
    return out


def test_a_missing_gateway_or_a_taken_port_is_refused_naming_the_field() -> None:
    missing = MESH.replace("via: {gateway: egress}}", "via: {gateway: exit}}", 1)
    snap = shop().with_changes(parse_yaml(missing.replace("MODE", "off"), "egress.yaml"))
    [error] = check_references(snap)
    assert (error.resource, error.path) == ("ExternalService default/payments", "spec.via.gateway")
    assert "Gateway default/exit does not exist" in error.message
    assert "default/egress" in error.message  # what exists

    clash = MESH.replace("port: 15432}", "port: 8000}").replace("MODE", "off")
    snap = shop().with_changes(parse_yaml(clash, "egress.yaml"))
    [error] = check_references(snap)
    assert (error.resource, error.path) == ("ExternalService default/ledger", "spec.via.port")
    assert "serves clients on port 8000" in error.message

    twice = MESH.replace("port: 80, protocol: http, via", "port: 443, protocol: http, via")
    snap = shop().with_changes(parse_yaml(twice.replace("MODE", "off"), "egress.yaml"))
    errors = check_references(snap)
    assert [(e.resource, e.path) for e in errors] == [
        ("ExternalService default/payments", "spec.port")
    ]


def test_the_caller_sends_to_the_gateway_over_mtls_and_keeps_its_routes() -> None:
    sidecar, _ = translate(snapshot(), BOTH)
    c = sidecar.clusters["outbound|default/payments|https"]
    assert c.type == cluster_pb2.Cluster.STATIC
    (host,) = c.load_assignment.endpoints[0].lb_endpoints
    addr = host.endpoint.address.socket_address
    assert (addr.address, addr.port_value) == ("127.0.0.30", 443)
    tls = _upstream_tls(c)
    peer = tls.common_tls_context.combined_validation_context.default_validation_context
    assert peer.match_typed_subject_alt_names[0].matcher.exact == (
        "spiffe://shop.local/ns/default/sa/egress"
    )
    assert list(tls.common_tls_context.alpn_protocols) == ["h2"]
    assert tls.sni == ""  # no origination at the caller
    # the breaker stays with the caller; outlier detection needs the real hosts
    assert c.circuit_breakers.thresholds[0].max_requests.value == 7
    assert not c.HasField("outlier_detection")
    # Host: a literal for one name, the gateway rewrites for several
    [pay] = sidecar.routes["outbound|default/payments|https"].virtual_hosts[0].routes
    assert pay.route.host_rewrite_literal == "pay.example.com"
    assert not pay.route.auto_host_rewrite.value
    [mirrors] = sidecar.routes["outbound|default/mirrors|http"].virtual_hosts[0].routes
    assert [h.header.key for h in mirrors.request_headers_to_add] == [AUTO_HOST_HEADER]
    # without via nothing changed: straight out, resolved by the caller
    weather = sidecar.clusters["outbound|default/weather|http"]
    assert weather.type == cluster_pb2.Cluster.STRICT_DNS
    [w] = sidecar.routes["outbound|default/weather|http"].virtual_hosts[0].routes
    assert w.route.auto_host_rewrite.value


def test_the_gateway_listens_per_external_service_and_originates() -> None:
    _, gw = translate(snapshot(), BOTH)
    egress = {n for n in gw.listeners if n.startswith("egress|")}
    assert egress == {"egress|default/payments", "egress|default/mirrors", "egress|default/ledger"}
    assert "egress|default/weather|http" not in gw.clusters  # not routed through it
    pay = gw.listeners["egress|default/payments"]
    addr = pay.address.socket_address
    assert (addr.address, addr.port_value) == ("127.0.0.30", 443)
    # permissive: mTLS (a mesh certificate required) beside plaintext
    assert [ch.filter_chain_match.transport_protocol for ch in pay.filter_chains] == [
        "tls",
        "raw_buffer",
    ]
    hcm = hcm_of(pay)
    [auto, rest] = hcm.route_config.virtual_hosts[0].routes
    assert auto.route.auto_host_rewrite.value and not rest.route.auto_host_rewrite.value
    assert rest.route.cluster == "egress|default/payments|https"
    assert list(hcm.route_config.request_headers_to_remove) == [AUTO_HOST_HEADER]
    c = gw.clusters["egress|default/payments|https"]
    assert c.type == cluster_pb2.Cluster.STRICT_DNS
    assert _upstream_tls(c).sni == "pay.example.com"
    assert c.outlier_detection.consecutive_5xx.value == 2
    ledger = gw.listeners["egress|default/ledger"]
    assert ledger.address.socket_address.port_value == 15432
    assert tcp_proxy_of(ledger).cluster == "egress|default/ledger|tcp"


def test_strict_takes_only_mtls_and_no_identity_means_plaintext() -> None:
    _, gw = translate(snapshot("strict"), BOTH)
    chains = gw.listeners["egress|default/payments"].filter_chains
    assert len(chains) == 1 and chains[0].HasField("transport_socket")
    # a gateway without identity (no SDS): plaintext both ways
    sidecar, gw = translate(snapshot("strict"), TlsState(capable=frozenset({OUT.node_id})))
    assert not sidecar.clusters["outbound|default/payments|https"].HasField("transport_socket")
    [chain] = gw.listeners["egress|default/payments"].filter_chains
    assert not chain.HasField("transport_socket")
    # mTLS off in the Mesh: plaintext even with identities
    sidecar, gw = translate(snapshot("off"), BOTH)
    assert not sidecar.clusters["outbound|default/payments|https"].HasField("transport_socket")


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["strict", "permissive", "off"])
def test_egress_gateway_configs_pass_envoy_validate(mode: str) -> None:
    bootstraps = []
    for res, ident in zip(translate(snapshot(mode), BOTH), (OUT, GW), strict=True):
        bootstrap = static_bootstrap(
            listeners=res.listeners.values(),
            clusters=res.clusters.values(),
            endpoints=res.endpoints.values(),
            routes=res.routes.values(),
            node=ident,
        )
        bootstrap.static_resources.clusters.append(_sds_cluster())
        bootstraps.append(bootstrap)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda b: validate_config_sync(b, timeout_s=120.0), bootstraps))
