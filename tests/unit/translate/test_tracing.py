"""With a telemetry service and tracing on, every sidecar HCM and the gateway's main HCM
trace with Envoy's OpenTelemetry tracer to ``gossamer_telemetry`` under the proxy's service
name (the gateway with an upstream span); every route carries
``Mesh.spec.tracing.sampling``; a rate change changes route tables only, never a listener.
At 0 (the default) no HCM has a tracer and no route a rate."""

from __future__ import annotations

from envoy.config.listener.v3 import listener_pb2
from envoy.config.trace.v3 import opentelemetry_pb2
from envoy.type.v3 import percent_pb2
from shop import shop
from translate_helpers import hcm_of

from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.translate import names, telemetry, tracing
from gossamer.translate.hcm import each_hcm
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.telemetry import TelemetryService
from gossamer.types import API_VERSION, ProxyIdentity

WEB_1 = ProxyIdentity("sidecar", "default", "web-1")
EDGE = ProxyIdentity("gateway", "default", "edge")


def traced(translator: Translator, snap: ModelSnapshot, who: ProxyIdentity) -> ProxyResources:
    translator.telemetry_service = TelemetryService("127.0.0.1", 18083)
    return translator.proxy(snap, who)


def with_sampling(snap: ModelSnapshot, percent: float) -> ModelSnapshot:
    mesh = {"tracing": {"sampling": percent}}
    manifest = {"apiVersion": API_VERSION, "kind": "Mesh", "metadata": {"name": "default"}}
    return snap.with_changes([parse_manifest({**manifest, "spec": mesh})])


def provider(listener: object) -> tuple[str, str, bool, float]:
    t = hcm_of(listener).tracing  # type: ignore[arg-type]
    config = opentelemetry_pb2.OpenTelemetryConfig()
    assert t.provider.name == tracing.OPENTELEMETRY_TRACER
    assert t.provider.typed_config.Unpack(config)
    return (
        config.grpc_service.envoy_grpc.cluster_name,
        config.service_name,
        t.spawn_upstream_span.value,
        t.random_sampling.value,
    )


def tracers(listener: listener_pb2.Listener) -> list[bool]:
    """Whether each HTTP connection manager of ``listener`` has a tracer."""
    found: list[bool] = []
    each_hcm(listener, lambda hcm: found.append(hcm.HasField("tracing")))
    return found


def test_every_hcm_traces_as_its_proxy_and_the_gateway_spawns_upstream_spans() -> None:
    snap = with_sampling(shop(), 1.0)
    res = traced(Translator(), snap, WEB_1)
    address = snap.local_addresses[("default", "reviews")]
    for name in (names.inbound_listener("http"), names.outbound_listener(address, 9080)):
        assert provider(res.listeners[name]) == (telemetry.CLUSTER, "default/web", False, 0.0)
    gw = traced(Translator(), snap, EDGE)
    main = gw.listeners[names.gateway_listener(("default", "edge"))]
    assert provider(main) == (telemetry.CLUSTER, "default/edge", True, 0.0)
    plain = Translator().proxy(snap, WEB_1)  # no telemetry service: no tracing
    assert not hcm_of(plain.listeners[names.inbound_listener("http")]).HasField("tracing")


def test_every_route_carries_the_mesh_rate_per_ten_thousand() -> None:
    # (Envoy's random value for the decision is the request id modulo 10 000: a rate per
    # million traced every request at 1 % and above)
    for percent, numerator in ((1, 100), (0.5, 50), (100, 10_000), (0.01, 1)):
        snap = with_sampling(shop(), percent)
        for who in (WEB_1, EDGE):
            res = traced(Translator(), snap, who)
            routes = [r for t in res.routes.values() for v in t.virtual_hosts for r in v.routes]
            assert routes
            for r in routes:
                sampling = r.tracing.random_sampling
                assert sampling.denominator == percent_pb2.FractionalPercent.TEN_THOUSAND
                assert sampling.numerator == numerator


def test_a_rate_change_changes_route_tables_and_no_listener() -> None:
    translator = Translator()
    snap = with_sampling(shop(), 1.0)
    before = {w: traced(translator, snap, w) for w in (WEB_1, EDGE)}
    after = {w: traced(translator, with_sampling(snap, 25.0), w) for w in (WEB_1, EDGE)}
    for who, res in before.items():
        assert {n: v.SerializeToString() for n, v in res.listeners.items()} == {
            n: v.SerializeToString() for n, v in after[who].listeners.items()
        }
        assert {n: v.SerializeToString() for n, v in res.routes.items()} != {
            n: v.SerializeToString() for n, v in after[who].routes.items()
        }


def test_tracing_off_by_default_or_at_0_leaves_no_tracer_and_no_rate() -> None:
    # (0.004 % rounds to 0 steps of 0.01 %: nothing would ever be traced)
    for snap in (shop(), with_sampling(shop(), 0), with_sampling(shop(), 0.004)):
        for who in (WEB_1, EDGE):
            res = traced(Translator(), snap, who)
            traces = [t for listener in res.listeners.values() for t in tracers(listener)]
            assert traces and not any(traces), who
            routes = [r for t in res.routes.values() for v in t.virtual_hosts for r in v.routes]
            assert routes and not any(r.HasField("tracing") for r in routes), who
            assert telemetry.CLUSTER in res.clusters  # (still counted)


def test_turning_tracing_on_changes_the_listeners_that_trace() -> None:
    translator = Translator()
    off = {w: traced(translator, shop(), w) for w in (WEB_1, EDGE)}
    on = {w: traced(translator, with_sampling(shop(), 5.0), w) for w in (WEB_1, EDGE)}
    inbound = names.inbound_listener("http")
    assert off[WEB_1].listeners[inbound] != on[WEB_1].listeners[inbound]
    main = names.gateway_listener(("default", "edge"))
    assert off[EDGE].listeners[main] != on[EDGE].listeners[main]


def test_a_gateway_table_is_built_sampled_and_served_from_its_shared_encoding() -> None:
    # A gateway's table is encoded once for all gateways serving the same Routes; a sampled
    # copy made after it was a new 15 MB message per gateway at 10,000 hosts, encoded again
    snap = with_sampling(shop(), 5.0)
    rname = names.gateway_route(("default", "edge"))
    translator = Translator()
    plain = translator.proxy(snap, EDGE).routes[rname]  # (no telemetry service: no rate)
    assert not any(r.HasField("tracing") for v in plain.virtual_hosts for r in v.routes)
    res = traced(translator, snap, EDGE)
    table = res.routes[rname]
    assert table == tracing.sampled_table(plain, tracing.route_sampling(snap.mesh))
    encoded_as, parts = res.route_encodings[rname]
    assert encoded_as is table
    assert b"".join(parts) == table.SerializeToString(deterministic=True)
    faster = with_sampling(snap, 25.0)
    again = traced(translator, faster, EDGE).routes[rname]
    assert again == tracing.sampled_table(plain, tracing.route_sampling(faster.mesh))


def with_second_caller(snap: ModelSnapshot) -> ModelSnapshot:
    """``shop`` and a sidecar of another service (``admin``) calling ``ratings`` too."""
    manifests = [
        {"kind": "Service", "metadata": {"name": "admin"},
         "spec": {"ports": [{"name": "http", "port": 8081}]}},
        {"kind": "Workload", "metadata": {"name": "admin-1"},
         "spec": {"service": "admin", "address": "127.0.0.9",
                  "ports": [{"port": 15001, "appPort": 18081}],
                  "dependencies": [{"service": "ratings"}]}},
    ]  # fmt: skip
    return snap.with_changes([parse_manifest({"apiVersion": API_VERSION, **m}) for m in manifests])


def test_an_outbound_listener_is_shared_by_its_callers_unless_it_traces_as_each() -> None:
    # (it is the caller's only when traced: a tracer exports under the calling service's
    # name; counting every request tags the destination alone. Built per caller service
    # with tracing off, 1,000 sidecars' first round took 7.6 s at 10k services, not 5)
    admin_1 = ProxyIdentity("sidecar", "default", "admin-1")
    for percent in (0.0, 5.0):
        snap = with_sampling(with_second_caller(shop()), percent)
        address = snap.local_addresses[("default", "ratings")]
        name = names.outbound_listener(address, 9090)
        translator = Translator()
        web, admin = (traced(translator, snap, who).listeners[name] for who in (WEB_1, admin_1))
        assert hcm_of(web).access_log and hcm_of(admin).access_log  # (both counted)
        if percent == 0:
            assert web is admin
        else:
            assert provider(web)[1] == "default/web"
            assert provider(admin)[1] == "default/admin"
