"""``Mesh.spec.telemetry.requests``: by default (``stats``) every sidecar HCM (inbound, each
outbound, an ExternalService's) and the gateway's main HCM count requests with Envoy's
stats access logger (the latency histogram only, tagged per view) and send no gRPC entry;
``logs`` gives them the gRPC access logger instead. Switching changes exactly the listeners
with an HCM (the logger is in the HCM: they are re-created and drain), no route, cluster or
endpoint; and ``ads_bootstrap`` carries the histogram's buckets, the same every time."""

from __future__ import annotations

from envoy.config.accesslog.v3 import accesslog_pb2
from shop import shop
from translate_helpers import hcm_of
from xds.type.v3 import typed_struct_pb2

from gossamer.model import Mesh, ModelSnapshot, parse_manifest, parse_yaml
from gossamer.translate import names, stat_sink, telemetry, telemetry_stats
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.types import API_VERSION, ProxyIdentity

SERVICE = telemetry.TelemetryService("127.0.0.1", 18083)
WEB_1 = ProxyIdentity("sidecar", "default", "web-1")
OUT_1 = ProxyIdentity("sidecar", "default", "out-1")
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


def _with(snap: ModelSnapshot, requests: str) -> ModelSnapshot:
    mesh = parse_manifest(
        {
            "apiVersion": API_VERSION,
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"telemetry": {"requests": requests}},
        }
    )
    assert isinstance(mesh, Mesh)
    return snap.with_changes([mesh])


def _proxy(translator: Translator, snap: ModelSnapshot, who: ProxyIdentity) -> ProxyResources:
    translator.telemetry_service = SERVICE
    return translator.proxy(snap, who)


def _stats_logs(listener: object) -> list[dict[str, object]]:
    """Each stats access logger of the listener's HCM, as the struct Envoy converts."""
    out = []
    log: accesslog_pb2.AccessLog
    for log in hcm_of(listener).access_log:  # type: ignore[arg-type]
        if log.name == telemetry_stats.STATS_ACCESS_LOG:
            typed = typed_struct_pb2.TypedStruct()
            assert log.typed_config.Unpack(typed)
            out.append(dict(typed.value.items()))
    return out


def _names(listener: object) -> list[str]:
    return [log.name for log in hcm_of(listener).access_log]  # type: ignore[arg-type]


def _tags(struct: dict[str, object]) -> dict[str, str]:
    [histogram] = struct["histograms"]  # type: ignore[misc]
    return {t["name"]: t["value_format"] for t in histogram["stat"]["tags"]}  # type: ignore[index]


def test_by_default_every_hcm_counts_requests_in_stats_and_sends_no_entry() -> None:
    snap = shop().with_changes(parse_yaml(WEATHER, "weather.yaml"))
    translator = Translator()
    web = _proxy(translator, snap, WEB_1)
    [inbound] = _stats_logs(web.listeners[names.inbound_listener("http")])
    assert "counters" not in inbound  # the histogram only: what measured cheapest
    assert _tags(inbound)["view"] == "inbound"
    assert _tags(inbound)["peer"] == "%DOWNSTREAM_PEER_URI_SAN%"
    address = snap.local_addresses[("default", "reviews")]
    [outbound] = _stats_logs(web.listeners[names.outbound_listener(address, 9080)])
    assert {k: v for k, v in _tags(outbound).items() if k in ("view", "dst", "cluster")} == {
        "view": "outbound",
        "dst": "default/reviews",
        "cluster": "%UPSTREAM_CLUSTER%",
    }
    out = _proxy(translator, snap, OUT_1)
    dsts = sorted(
        (_tags(s)["dst"], _tags(s).get("dst_kind", ""))
        for name, listener in out.listeners.items()
        if name.startswith("outbound|")
        for s in _stats_logs(listener)
    )
    assert dsts == [("default/reviews", ""), ("default/weather", "external")]
    edge = _proxy(translator, snap, EDGE)
    [gateway] = _stats_logs(edge.listeners[names.gateway_listener(("default", "edge"))])
    assert _tags(gateway)["view"] == "gateway"
    for res in (web, out, edge):
        for listener in res.listeners.values():
            if listener.filter_chains[0].filters[0].name.endswith("http_connection_manager"):
                assert telemetry.HTTP_GRPC_ACCESS_LOG not in _names(listener)
    assert telemetry.CLUSTER in edge.clusters  # (traces still go to the service)


def test_logs_give_the_grpc_logger_instead() -> None:
    snap = _with(shop(), "logs")
    res = _proxy(Translator(), snap, WEB_1)
    inbound = res.listeners[names.inbound_listener("http")]
    assert _names(inbound) == [telemetry.HTTP_GRPC_ACCESS_LOG]
    assert _stats_logs(inbound) == []


def test_switching_changes_exactly_the_listeners_with_an_hcm() -> None:
    snap = shop().with_changes(parse_yaml(WEATHER, "weather.yaml"))
    translator = Translator()
    before = {w: _proxy(translator, snap, w) for w in (WEB_1, OUT_1, EDGE)}
    switched = _with(snap, "logs")
    after = {w: _proxy(translator, switched, w) for w in (WEB_1, OUT_1, EDGE)}
    for who, res in before.items():
        new = after[who]
        for kind in ("clusters", "endpoints", "routes", "extension_configs"):
            old_kind, new_kind = getattr(res, kind), getattr(new, kind)
            assert {n: v.SerializeToString() for n, v in old_kind.items()} == {
                n: v.SerializeToString() for n, v in new_kind.items()
            }, (who, kind)
        assert res.listeners.keys() == new.listeners.keys()
        for name, listener in res.listeners.items():
            changed = listener.SerializeToString() != new.listeners[name].SerializeToString()
            has_hcm = listener.filter_chains[0].filters[0].name.endswith("connection_manager")
            assert changed == has_hcm, (who, name)
    back = {w: _proxy(translator, _with(snap, "stats"), w) for w in (WEB_1, OUT_1, EDGE)}
    for who, res in before.items():
        assert {n: v.SerializeToString() for n, v in res.listeners.items()} == {
            n: v.SerializeToString() for n, v in back[who].listeners.items()
        }


def test_the_ads_bootstrap_carries_the_latency_buckets_deterministically() -> None:
    def build() -> bytes:
        node = ProxyIdentity("sidecar", "default", "web-1", service="web")
        out = ads_bootstrap(node, ("127.0.0.1", 18000), ("127.0.0.1", 19000))
        [setting] = out.stats_config.histogram_bucket_settings
        assert tuple(setting.buckets) == stat_sink.LATENCY_BUCKETS_US
        assert setting.match.prefix == "gossamer.rq_time_us"
        return out.SerializeToString(deterministic=True)

    assert build() == build()
