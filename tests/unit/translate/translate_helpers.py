"""Helpers for translator tests: unpack listeners, and variants of the shop mesh."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.tcp_proxy.v3 import tcp_proxy_pb2
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2
from google.protobuf import any_pb2
from shop import shop

from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.translate.common import HTTP_PROTOCOL_OPTIONS
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.types import ProxyIdentity

#: a plain http process without a sidecar, and a sidecar that calls it
LEGACY = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: legacy}
spec: {ports: [{name: http, port: 8081}]}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: legacy-1}
spec:
  service: legacy
  address: 127.0.0.7
  sidecar: false
  health: draining
  weight: 7
  zone: z9
  ports: [{port: 18081}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: web-2}
spec:
  service: web
  address: 127.0.0.8
  ports: [{port: 15001, appPort: 18080}]
  dependencies: [{service: legacy}, {service: reviews}]
"""


def shop_with_legacy() -> ModelSnapshot:
    return shop().with_changes(parse_yaml(LEGACY, "legacy.yaml"))


#: gateway rules with regex matches, and subsets whose label values need escaping in names
ODD_SUBSETS = """
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: reviews-3, labels: {app.kubernetes.io/version: "1.2|x=y,z%/é", tier: gold}}
spec:
  service: reviews
  address: 127.0.0.9
  ports: [{port: 15001, appPort: 19080}]
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge}
spec:
  gateways: [edge]
  rules:
  - matches: [{path: {regex: "/items/[0-9]+"}, headers: [{name: x-user, regex: "^[a-z]+$"}]}]
    destinations:
    - {service: reviews, subset: {app.kubernetes.io/version: "1.2|x=y,z%/é"}, weight: 50}
    - {service: reviews, subset: {app.kubernetes.io/version: "1.2|x=y,z%/é", tier: gold}}
  - destinations: [{service: web}]
"""


def shop_with_odd_subsets() -> ModelSnapshot:
    return shop().with_changes(parse_yaml(ODD_SUBSETS, "odd.yaml"))


def proxies(snap: ModelSnapshot) -> list[ProxyIdentity]:
    """Every sidecar and gateway of ``snap``."""
    out = [
        ProxyIdentity("sidecar", ns, name)
        for (ns, name), w in snap.workloads.items()
        if w.spec.sidecar
    ]
    out += [ProxyIdentity("gateway", ns, name) for ns, name in snap.gateways]
    return out


def translate(snap: ModelSnapshot, kind: str, name: str) -> ProxyResources:
    ident = ProxyIdentity("sidecar" if kind == "sidecar" else "gateway", "default", name)
    return Translator().proxy(snap, ident)


def network_filter(listener: listener_pb2.Listener) -> tuple[str, any_pb2.Any]:
    """The one network filter of ``listener``'s plaintext filter chain."""
    [chain] = [c for c in listener.filter_chains if not c.HasField("transport_socket")]
    [f] = chain.filters
    return f.name, f.typed_config


def hcm_of(listener: listener_pb2.Listener) -> hcm_pb2.HttpConnectionManager:
    name, typed = network_filter(listener)
    assert name == "envoy.filters.network.http_connection_manager"
    out = hcm_pb2.HttpConnectionManager()
    assert typed.Unpack(out)
    return out


def tcp_proxy_of(listener: listener_pb2.Listener) -> tcp_proxy_pb2.TcpProxy:
    name, typed = network_filter(listener)
    assert name == "envoy.filters.network.tcp_proxy"
    out = tcp_proxy_pb2.TcpProxy()
    assert typed.Unpack(out)
    return out


def upstream_http(options: dict[str, any_pb2.Any]) -> str:
    """``"http1"`` or ``"http2"``: what a cluster's explicit upstream protocol is."""
    out = http_protocol_options_pb2.HttpProtocolOptions()
    assert options[HTTP_PROTOCOL_OPTIONS].Unpack(out)
    which = out.explicit_http_config.WhichOneof("protocol_config")
    return {"http_protocol_options": "http1", "http2_protocol_options": "http2"}[which]


#: one change of each kind a cluster or endpoint set is translated from, and a Route
CLUSTER_INPUTS = {
    "Service": "kind: Service\nmetadata: {name: reviews}\n"
    "spec: {ports: [{name: http, port: 9081}]}",
    "Workload": "kind: Workload\nmetadata: {name: reviews-1, labels: {version: v1}}\n"
    "spec: {service: reviews, address: 127.0.0.3, ports: [{port: 15001, appPort: 19080}], "
    "weight: 5}",
    "Mesh": "kind: Mesh\nmetadata: {name: default}\nspec: {mtls: {mode: strict}}",
    "TrafficPolicy": "kind: TrafficPolicy\nmetadata: {name: reviews}\n"
    "spec: {service: reviews, loadBalancer: {algorithm: leastRequest}}",
    "Route": "kind: Route\nmetadata: {name: edge}\nspec: {gateways: [edge], rules: "
    "[{destinations: [{service: web}], timeout: 3s}]}",
}
