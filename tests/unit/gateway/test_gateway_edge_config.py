"""What a gateway's connection manager gets beyond a sidecar's: edge hardening."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.http.early_header_mutation.header_mutation.v3 import (
    header_mutation_pb2,
)
from google.protobuf import json_format

from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.translate.hcm import ACCESS_LOG_FORMAT, EDGE_CONNECTION_BUFFER_BYTES
from gossamer.translate.proxy import Translator
from gossamer.types import ProxyIdentity

MESH = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: api}
spec: {ports: [{name: http, port: 9000}]}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 8080}]}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: api-1}
spec: {service: api, address: 127.0.0.3, sidecar: false, ports: [{port: 9000}]}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: web-1}
spec:
  service: web
  address: 127.0.0.2
  ports: [{port: 18080, appPort: 8080}]
  dependencies: [{service: api}]
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {name: edge}
spec: {port: 8443, trustedHops: 1}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge}
spec:
  gateways: [edge]
  rules: [{destinations: [{service: web}]}]
"""


def _snapshot() -> ModelSnapshot:
    return ModelSnapshot().with_changes(parse_yaml(MESH, "mesh.yaml"))


def _hcms(kind: str, name: str) -> list[hcm_pb2.HttpConnectionManager]:
    res = Translator().proxy(_snapshot(), ProxyIdentity(kind, "default", name))  # type: ignore[arg-type]
    out = []
    for listener in res.listeners.values():
        assert isinstance(listener, listener_pb2.Listener)
        f = listener.filter_chains[0].filters[0]
        hcm = hcm_pb2.HttpConnectionManager()
        if f.typed_config.Unpack(hcm):
            out.append(hcm)
    return out


def _router(hcm: hcm_pb2.HttpConnectionManager) -> router_pb2.Router:
    router = router_pb2.Router()
    assert hcm.http_filters[-1].typed_config.Unpack(router)
    return router


def test_gateway_strips_every_x_envoy_header_before_envoy_reads_the_request() -> None:
    (hcm,) = _hcms("gateway", "edge")
    (ext,) = hcm.early_header_mutation_extensions
    config = header_mutation_pb2.HeaderMutation()
    assert ext.typed_config.Unpack(config)
    (mutation,) = config.mutations
    matcher = mutation.remove_on_match.key_matcher
    assert matcher.prefix == "x-envoy-" and matcher.ignore_case


def test_gateway_treats_every_client_as_external_and_owns_the_request_id() -> None:
    (hcm,) = _hcms("gateway", "edge")
    assert hcm.use_remote_address.value is True
    assert hcm.xff_num_trusted_hops == 1
    # unset: Envoy then treats no client as internal (set without ranges, it would treat
    # RFC 1918 and loopback clients as internal); test_gateway_edge.py checks the behaviour
    assert not hcm.HasField("internal_address_config")
    assert hcm.generate_request_id.value is True
    assert hcm.preserve_external_request_id is False
    assert _router(hcm).suppress_envoy_headers is True


def test_gateway_access_log_is_json_on_stdout_with_request_id_cluster_and_flags() -> None:
    (hcm,) = _hcms("gateway", "edge")
    (log,) = hcm.access_log
    assert log.name == "envoy.access_loggers.stdout"
    config = stream_pb2.StdoutAccessLog()
    assert log.typed_config.Unpack(config)
    fmt = json_format.MessageToDict(config.log_format.json_format)
    assert fmt == ACCESS_LOG_FORMAT
    assert fmt["request_id"] == "%REQ(X-REQUEST-ID)%"
    assert fmt["upstream_cluster"] == "%UPSTREAM_CLUSTER%"
    assert fmt["response_flags"] == "%RESPONSE_FLAGS%"


def test_sidecars_keep_their_settings() -> None:
    hcms = _hcms("sidecar", "web-1")
    assert len(hcms) == 2  # inbound and the dependency
    for hcm in hcms:
        assert not hcm.early_header_mutation_extensions
        assert not hcm.access_log
        assert not hcm.HasField("internal_address_config")
        assert not hcm.use_remote_address.value
        assert hcm.preserve_external_request_id is True
        assert _router(hcm).suppress_envoy_headers is False


def test_gateway_bounds_what_one_client_can_make_it_buffer() -> None:
    res = Translator().proxy(_snapshot(), ProxyIdentity("gateway", "default", "edge"))
    (listener,) = res.listeners.values()
    assert listener.per_connection_buffer_limit_bytes.value == EDGE_CONNECTION_BUFFER_BYTES
    (hcm,) = _hcms("gateway", "edge")
    h2 = hcm.http2_protocol_options
    assert h2.max_concurrent_streams.value == 100
    assert h2.initial_stream_window_size.value == 64 * 1024
    assert h2.initial_connection_window_size.value == 1024 * 1024
    sidecar = Translator().proxy(_snapshot(), ProxyIdentity("sidecar", "default", "web-1"))
    for lst in sidecar.listeners.values():
        assert not lst.HasField("per_connection_buffer_limit_bytes")
    for hcm in _hcms("sidecar", "web-1"):
        assert hcm.http2_protocol_options.max_concurrent_streams.value == 1024
        assert not hcm.http2_protocol_options.HasField("initial_stream_window_size")
