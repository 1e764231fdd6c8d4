"""The egress gateway's caller check (``translate.egress_callers``): on the mTLS chain of an
ExternalService's egress listener, exactly the SPIFFE ids of services whose workloads
depend on it pass (network RBAC for tcp/tls, HTTP RBAC for http/https), across
namespaces; a workload without a sidecar or without the dependency is no caller; nothing
is checked without mTLS (no identity to check) nor on permissive's plaintext chain; the
configs pass ``envoy --mode validate`` (``test_egress_gateway``'s validate test runs them)."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as net_rbac_pb2
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from test_egress_gateway import BOTH, MESH, snapshot, translate
from xds.type.matcher.v3 import matcher_pb2

from gossamer.translate.egress_callers import NETWORK_STATS, policy_name
from gossamer.translate.rbac import RBAC_FILTER
from gossamer.translate.tls import NETWORK_RBAC, TlsState

MORE = """
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: batch-1, namespace: jobs}
spec:
  service: batch
  address: 127.0.0.21
  ports: [{port: 15001, appPort: 18080}]
  dependencies: [{service: ledger, namespace: default}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: web-9}
spec:
  service: web
  address: 127.0.0.22
  ports: [{port: 15001, appPort: 18080}]
  dependencies: [{service: ledger}]
"""
JOBS = """
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: batch, namespace: jobs}
spec: {ports: [{name: http, port: 8080}]}
"""


def _allowed(m: matcher_pb2.Matcher) -> set[str]:
    """The peers ``m`` allows (an exact map on the URI SAN, deny on no match)."""
    assert m.on_no_match.action.name == "envoy.filters.rbac.action"
    return set(m.matcher_tree.exact_match_map.map) if m.HasField("matcher_tree") else set()


def _tls_chain(listener: listener_pb2.Listener) -> listener_pb2.FilterChain:
    [chain] = [c for c in listener.filter_chains if c.HasField("transport_socket")]
    return chain


def _network_check(listener: listener_pb2.Listener) -> net_rbac_pb2.RBAC:
    chain = _tls_chain(listener)
    # the one-workload-id check, then the caller check, then the TCP proxy
    assert [f.name for f in chain.filters] == [
        NETWORK_RBAC,
        NETWORK_RBAC,
        "envoy.filters.network.tcp_proxy",
    ]
    rbac = net_rbac_pb2.RBAC()
    assert chain.filters[1].typed_config.Unpack(rbac)
    return rbac


def _http_check(listener: listener_pb2.Listener) -> http_rbac_pb2.RBAC:
    chain = _tls_chain(listener)
    hcm = hcm_pb2.HttpConnectionManager()
    assert chain.filters[-1].typed_config.Unpack(hcm)
    first = hcm.http_filters[0]
    assert first.name == RBAC_FILTER
    rbac = http_rbac_pb2.RBAC()
    assert first.typed_config.Unpack(rbac)
    return rbac


def test_only_the_dependent_services_pass_at_the_gateway() -> None:
    snap = snapshot("strict", MESH + JOBS + MORE)
    _, gw = translate(snap, BOTH)
    ledger = _network_check(gw.listeners["egress|default/ledger"])
    # web (two workloads, one id) and batch from another namespace; nobody else
    assert _allowed(ledger.matcher) == {
        "spiffe://shop.local/ns/default/sa/web",
        "spiffe://shop.local/ns/jobs/sa/batch",
    }
    assert ledger.stat_prefix == f"{NETWORK_STATS}default/ledger."
    assert ledger.matcher.on_no_match.action.typed_config.type_url.endswith("rbac.v3.Action")
    # the TCP proxy behind it connects out only once the caller's handshake is done
    proxy = tcp_proxy_pb2.TcpProxy()
    assert _tls_chain(gw.listeners["egress|default/ledger"]).filters[2].typed_config.Unpack(proxy)
    assert proxy.upstream_connect_mode == tcp_proxy_pb2.ON_DOWNSTREAM_TLS_HANDSHAKE
    # https and http: the HTTP check, only web depends on them
    for name in ("payments", "mirrors"):
        rbac = _http_check(gw.listeners[f"egress|default/{name}"])
        assert _allowed(rbac.matcher) == {"spiffe://shop.local/ns/default/sa/web"}


def test_an_external_service_nobody_depends_on_denies_everyone() -> None:
    text = MESH.replace(
        "dependencies: [{service: payments}, {service: mirrors}, {service: ledger}",
        "dependencies: [{service: payments}, {service: mirrors}",
    )
    _, gw = translate(snapshot("strict", text), BOTH)
    rbac = _network_check(gw.listeners["egress|default/ledger"])
    assert _allowed(rbac.matcher) == set()
    deny = rbac.matcher.on_no_match.action
    assert deny.typed_config.value  # an action, named for the denial's details
    assert policy_name(("default", "ledger")) == "egress-callers:default/ledger"


def test_no_check_without_identities_and_none_on_permissive_plaintext() -> None:
    _, gw = translate(snapshot("permissive"), BOTH)
    pay = gw.listeners["egress|default/payments"]
    plain = [c for c in pay.filter_chains if not c.HasField("transport_socket")]
    [chain] = plain
    hcm = hcm_pb2.HttpConnectionManager()
    assert chain.filters[0].typed_config.Unpack(hcm)
    assert RBAC_FILTER not in [f.name for f in hcm.http_filters]
    assert _allowed(_http_check(pay).matcher) == {"spiffe://shop.local/ns/default/sa/web"}
    # no gateway identity: plaintext only, no check
    _, gw = translate(snapshot("strict"), TlsState())
    [chain] = gw.listeners["egress|default/ledger"].filter_chains
    assert [f.name for f in chain.filters] == ["envoy.filters.network.tcp_proxy"]
