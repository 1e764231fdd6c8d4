"""ExternalServices as a caller's sidecar serves them: DNS clusters with the getaddrinfo
resolver or static addresses, TLS origination (SNI, DNS-SAN check, inline or system CA),
the route table (rules of its Routes, mesh default timeout and retries, Host rewritten, no
x-envoy-* headers out), TCP proxies for tcp and tls; and every config passes
``envoy --mode validate``."""

from __future__ import annotations

import datetime
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from shop import shop
from translate_helpers import hcm_of, tcp_proxy_of

from gossamer.envoy.validate import validate_config_sync
from gossamer.model import ModelSnapshot, check_references, parse_yaml
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.common import HTTP_PROTOCOL_OPTIONS
from gossamer.translate.egress import GETADDRINFO_RESOLVER, SYSTEM_CA_BUNDLE
from gossamer.translate.hcm import ROUTER_FILTER
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.types import ProxyIdentity


def _ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "partner ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


CA = _ca()

EXTERNAL = """
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: payments}
spec: {hosts: [pay.example.com], port: 443, protocol: https}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: partner}
spec:
  addresses: [203.0.113.7, 203.0.113.8]
  port: 8443
  protocol: https
  tls:
    sni: partner.example.com
    ca: |
CA_PEM
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: weather}
spec: {hosts: [localhost], port: 8080, protocol: http}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: ledger}
spec: {addresses: [198.51.100.5], port: 5432, protocol: tcp}
---
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: vault}
spec: {hosts: [vault.example.com], port: 8200, protocol: tls, localAddress: 127.64.0.5}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: weather}
spec:
  service: weather
  rules:
    - matches: [{path: {prefix: /slow}}]
      timeout: 30s
      retries: {attempts: 0}
      destinations: [{service: weather}]
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
  dependencies:
    - {service: payments}
    - {service: partner, localPort: 80}
    - {service: weather}
    - {service: ledger}
    - {service: vault}
"""
OUT = ProxyIdentity("sidecar", "default", "out-1")


def with_external() -> ModelSnapshot:
    text = EXTERNAL.replace("CA_PEM", "\n".join("      " + line for line in CA.splitlines()))
    snap = shop().with_changes(parse_yaml(text, "external.yaml"))
    assert check_references(snap) == []
    return snap


def resources() -> tuple[ModelSnapshot, ProxyResources]:
    snap = with_external()
    return snap, Translator().proxy(snap, OUT)


def _tls(c: cluster_pb2.Cluster) -> tls_pb2.UpstreamTlsContext:
    out = tls_pb2.UpstreamTlsContext()
    c.transport_socket.typed_config.Unpack(out)
    return out


def test_host_names_resolve_with_getaddrinfo_and_https_originates_tls() -> None:
    _, res = resources()
    c = res.clusters["outbound|default/payments|https"]
    assert c.type == cluster_pb2.Cluster.STRICT_DNS
    assert c.typed_dns_resolver_config.name == GETADDRINFO_RESOLVER
    (host,) = c.load_assignment.endpoints[0].lb_endpoints
    addr = host.endpoint.address.socket_address
    assert (addr.address, addr.port_value) == ("pay.example.com", 443)
    tls = _tls(c)
    assert tls.sni == "pay.example.com"
    vc = tls.common_tls_context.validation_context
    assert vc.trusted_ca.filename == SYSTEM_CA_BUNDLE
    (san,) = vc.match_typed_subject_alt_names
    assert san.san_type == common_pb2.SubjectAltNameMatcher.DNS
    assert san.matcher.exact == "pay.example.com"
    (t,) = c.circuit_breakers.thresholds
    assert t.max_requests.value == 7 and c.outlier_detection.consecutive_5xx.value == 2
    opts = http_protocol_options_pb2.HttpProtocolOptions()
    c.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS].Unpack(opts)
    assert opts.explicit_http_config.HasField("http_protocol_options")  # HTTP/1.1 out


def test_addresses_are_static_with_the_given_ca_and_sni() -> None:
    snap, res = resources()
    c = res.clusters["outbound|default/partner|https"]
    assert c.type == cluster_pb2.Cluster.STATIC and not c.HasField("typed_dns_resolver_config")
    hosts = [e.endpoint.address.socket_address for e in c.load_assignment.endpoints[0].lb_endpoints]
    assert [(h.address, h.port_value) for h in hosts] == [
        ("203.0.113.7", 8443),
        ("203.0.113.8", 8443),
    ]
    tls = _tls(c)
    assert tls.sni == "partner.example.com"
    assert tls.common_tls_context.validation_context.trusted_ca.inline_string == CA
    # the app dials the stable local address on the port it asked for
    address = snap.local_addresses[("default", "partner")]
    assert f"outbound|{address}:80" in res.listeners
    (route,) = res.routes["outbound|default/partner|https"].virtual_hosts[0].routes
    assert route.route.host_rewrite_literal == "partner.example.com"


def test_http_routes_have_the_rules_then_mesh_defaults_and_send_the_hosts_name() -> None:
    snap, res = resources()
    table = res.routes["outbound|default/weather|http"]
    slow, default = table.virtual_hosts[0].routes
    assert slow.match.prefix == "/slow" and slow.route.timeout.seconds == 30
    assert not slow.route.HasField("retry_policy")
    defaults = snap.mesh.spec.defaults
    assert default.route.timeout.ToTimedelta() == defaults.requestTimeout
    assert default.route.retry_policy.num_retries.value == defaults.retries.attempts
    for r in (slow, default):
        assert r.route.cluster == "outbound|default/weather|http"
        assert r.route.auto_host_rewrite.value
    address = snap.local_addresses[("default", "weather")]
    hcm = hcm_of(res.listeners[f"outbound|{address}:8080"])
    assert hcm.rds.route_config_name == "outbound|default/weather|http"
    router = router_pb2.Router()
    next(f for f in hcm.http_filters if f.name == ROUTER_FILTER).typed_config.Unpack(router)
    assert router.suppress_envoy_headers


def test_tcp_and_tls_are_tcp_proxies() -> None:
    snap, res = resources()
    ledger = snap.local_addresses[("default", "ledger")]
    assert tcp_proxy_of(res.listeners[f"outbound|{ledger}:5432"]).cluster == (
        "outbound|default/ledger|tcp"
    )
    vault = tcp_proxy_of(res.listeners["outbound|127.64.0.5:8200"])
    assert vault.cluster == "outbound|default/vault|tls"
    c = res.clusters["outbound|default/vault|tls"]
    assert not c.HasField("transport_socket")  # passthrough: the app speaks TLS
    assert not c.typed_extension_protocol_options
    assert res.missing_references() == []


def test_a_route_change_keeps_the_listener_and_cluster() -> None:
    translator = Translator()
    snap = with_external()
    before = translator.proxy(snap, OUT)
    changed = snap.with_changes(
        parse_yaml(
            """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: weather}
spec:
  service: weather
  rules: [{matches: [{path: {prefix: /x}}], destinations: [{service: weather}]}]
""",
            "r.yaml",
        )
    )
    after = translator.proxy(changed, OUT)
    assert before.listeners == after.listeners and before.clusters == after.clusters
    assert before.routes != after.routes


@pytest.mark.integration
def test_every_egress_config_passes_envoy_validate() -> None:
    _, res = resources()
    bootstraps = [
        static_bootstrap(
            listeners=res.listeners.values(),
            clusters=res.clusters.values(),
            endpoints=res.endpoints.values(),
            routes=res.routes.values(),
            node=OUT,
        )
    ]
    with ThreadPoolExecutor(max_workers=1) as pool:
        list(pool.map(lambda b: validate_config_sync(b, timeout_s=120.0), bootstraps))
