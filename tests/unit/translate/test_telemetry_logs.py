"""With a telemetry service and ``Mesh.spec.telemetry.requests: logs``, every sidecar HCM
(inbound, each outbound) and the gateway's main HCM log over gRPC to ``gossamer_telemetry``
with the log names and custom tags the telemetry service reads
(``gossamer.telemetry.entries``); without one nothing changes; a route change leaves every
listener as it was (no drain); and every proxy's config with the loggers passes ``envoy
--mode validate`` (in both modes: ``stats``, the default, is ``test_telemetry_requests.py``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from shop import shop as shop_mesh
from test_proxy_validate import _error, _sds_cluster
from translate_helpers import hcm_of, proxies

from gossamer.model import Mesh, ModelSnapshot, parse_manifest, parse_yaml
from gossamer.telemetry import entries
from gossamer.translate import names, stat_sink, telemetry
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.telemetry import TelemetryService
from gossamer.translate.tls import TlsState
from gossamer.types import API_VERSION, ProxyIdentity

SERVICE = TelemetryService("127.0.0.1", 18083)
WEB_1 = ProxyIdentity("sidecar", "default", "web-1")
EDGE = ProxyIdentity("gateway", "default", "edge")

WEATHER = """
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: weather}
spec: {hosts: [localhost], port: 8080, protocol: http}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: out-1}
spec:
  service: web
  address: 127.0.0.20
  ports: [{port: 15001, appPort: 18080}]
  dependencies: [{service: weather}, {service: reviews}]
"""


def _mesh(**spec: object) -> Mesh:
    manifest = {"apiVersion": API_VERSION, "kind": "Mesh", "metadata": {"name": "default"}}
    mesh = parse_manifest({**manifest, "spec": {"telemetry": {"requests": "logs"}, **spec}})
    assert isinstance(mesh, Mesh)
    return mesh


def shop() -> ModelSnapshot:
    """The shop, its requests logged over gRPC (``Mesh.spec.telemetry.requests: logs``)."""
    return shop_mesh().with_changes([_mesh()])


def _logged(translator: Translator, snap: ModelSnapshot, who: ProxyIdentity) -> ProxyResources:
    translator.telemetry_service = SERVICE
    return translator.proxy(snap, who)


def _telemetry_logs(listener: object) -> list[als_pb2.HttpGrpcAccessLogConfig]:
    out = []
    log: accesslog_pb2.AccessLog
    for log in hcm_of(listener).access_log:  # type: ignore[arg-type]
        config = als_pb2.HttpGrpcAccessLogConfig()
        if log.typed_config.Unpack(config) and config.common_config.log_name in entries.LOG_NAMES:
            out.append(config)
    return out


def _tags(config: als_pb2.HttpGrpcAccessLogConfig) -> dict[str, str]:
    return {t.tag: t.literal.value or t.value for t in config.common_config.custom_tags}


def test_tag_and_log_names_are_the_telemetry_services() -> None:
    assert telemetry.UPSTREAM_PEER_TAG == entries.UPSTREAM_PEER_TAG
    assert telemetry.DESTINATION_TAG == entries.DESTINATION_TAG
    assert telemetry.DESTINATION_KIND_TAG == entries.DESTINATION_KIND_TAG
    assert entries.LOG_NAMES == {
        telemetry.OUTBOUND: "client",
        telemetry.GATEWAY: "client",
        telemetry.INBOUND: "server",
    }


def test_without_a_telemetry_service_nothing_logs_to_it() -> None:
    snap = shop()
    translator = Translator()
    for who in proxies(snap):
        res = translator.proxy(snap, who)
        assert telemetry.CLUSTER not in res.clusters
        for listener in res.listeners.values():
            if listener.filter_chains[0].filters[0].name.endswith("http_connection_manager"):
                assert _telemetry_logs(listener) == []


def test_sidecar_inbound_and_outbound_log_to_the_service() -> None:
    snap = shop()
    res = _logged(Translator(), snap, WEB_1)
    cluster = res.clusters[telemetry.CLUSTER]
    address = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address
    assert (address.socket_address.address, address.socket_address.port_value) == (
        "127.0.0.1",
        18083,
    )
    [inbound] = _telemetry_logs(res.listeners[names.inbound_listener("http")])
    common = inbound.common_config
    assert common.log_name == "inbound"
    assert common.grpc_service.envoy_grpc.cluster_name == telemetry.CLUSTER
    assert common.buffer_flush_interval.ToMilliseconds() == 1000
    assert common.buffer_size_bytes.value == telemetry.BUFFER_BYTES
    assert _tags(inbound) == {}
    address = snap.local_addresses[("default", "reviews")]
    [outbound] = _telemetry_logs(res.listeners[names.outbound_listener(address, 9080)])
    assert outbound.common_config.log_name == "outbound"
    assert _tags(outbound) == {
        entries.UPSTREAM_PEER_TAG: "%UPSTREAM_PEER_URI_SAN%",
        entries.DESTINATION_TAG: "default/reviews",
    }


def test_an_external_services_listener_marks_its_requests_external() -> None:
    snap = shop().with_changes(parse_yaml(WEATHER, "weather.yaml"))
    res = _logged(Translator(), snap, ProxyIdentity("sidecar", "default", "out-1"))
    logs = {
        name: _telemetry_logs(listener)
        for name, listener in res.listeners.items()
        if name.startswith("outbound|")
    }
    tags = sorted(_tags(config)[entries.DESTINATION_TAG] for v in logs.values() for config in v)
    assert tags == ["default/reviews", "default/weather"]
    [weather] = [c for v in logs.values() for c in v if "weather" in str(_tags(c))]
    assert _tags(weather)[entries.DESTINATION_KIND_TAG] == "external"


def test_the_gateway_logs_its_requests_as_gateway() -> None:
    snap = shop()
    res = _logged(Translator(), snap, EDGE)
    [log] = _telemetry_logs(res.listeners[names.gateway_listener(("default", "edge"))])
    assert log.common_config.log_name == "gateway"
    assert _tags(log) == {entries.UPSTREAM_PEER_TAG: "%UPSTREAM_PEER_URI_SAN%"}
    assert telemetry.CLUSTER in res.clusters


def test_a_route_change_leaves_every_listener_unchanged() -> None:
    snap = shop()
    translator = Translator()
    before = {w: _logged(translator, snap, w).listeners for w in (WEB_1, EDGE)}
    changed = snap.with_changes(
        parse_yaml(
            """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: reviews}
spec:
  service: reviews
  rules: [{destinations: [{service: reviews, subset: {version: v2}}], timeout: 9s}]
""",
            "route.yaml",
        )
    )
    after = {w: _logged(translator, changed, w).listeners for w in (WEB_1, EDGE)}
    for who, listeners in before.items():
        assert {n: v.SerializeToString() for n, v in listeners.items()} == {
            n: v.SerializeToString() for n, v in after[who].items()
        }


@pytest.mark.integration
@pytest.mark.parametrize("requests", ["stats", "logs"])
def test_every_proxy_with_telemetry_and_strict_mtls_passes_envoy_validate(requests: str) -> None:
    snap = shop().with_changes(parse_yaml(WEATHER, "weather.yaml"))
    spec = {"trustDomain": "shop.local", "mtls": {"mode": "strict"}}
    snap = snap.with_changes([_mesh(**spec, telemetry={"requests": requests})])
    idents = proxies(snap)
    refs = frozenset((p.namespace, p.name) for p in idents if p.kind == "sidecar")
    # every proxy takes mTLS (so sidecars also have the denial log beside the telemetry's)
    tls = TlsState(frozenset(p.node_id for p in idents), refs, refs)
    translator = Translator()
    translator.telemetry_service = SERVICE
    bootstraps = {}
    for ident in idents:
        res = translator.proxy(snap, ident, tls)
        assert telemetry.CLUSTER in res.clusters
        bootstrap = static_bootstrap(
            listeners=res.listeners.values(),
            clusters=res.clusters.values(),
            endpoints=res.endpoints.values(),
            routes=res.routes.values(),
            node=ident,
        )
        bootstrap.static_resources.clusters.append(_sds_cluster())
        # as ``ads_bootstrap`` has them: the stat sink and the latency buckets
        bootstrap.stats_sinks.append(stat_sink.stats_sink(ident, telemetry.CLUSTER))
        bootstrap.stats_config.CopyFrom(stat_sink.stats_config())
        bootstraps[ident.node_id] = bootstrap
    with ThreadPoolExecutor(max_workers=3) as pool:
        errors = dict(zip(bootstraps, pool.map(_error, bootstraps.values()), strict=True))
    assert {node: e for node, e in errors.items() if e is not None} == {}
