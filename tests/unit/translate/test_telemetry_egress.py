"""Telemetry of ExternalServices, as the translator configures it (both
``Mesh.spec.telemetry.requests`` modes): an egress gateway's HTTP listener counts its
requests as the gateway's (``gateway``), naming the external service with a literal and
marking it ``external``; a TCP one counts nothing (as at a sidecar); a caller's listener
for a service reached through the gateway names the gateway (kind ``gateway``), one
reached directly the external service; without a telemetry service nothing is added; and
both proxies' configs, with the telemetry cluster and the stat sink, pass ``envoy --mode
validate`` under strict mTLS."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.listener.v3 import listener_components_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from test_egress_gateway import BOTH, GW, OUT, snapshot
from test_proxy_validate import _sds_cluster
from test_telemetry_requests import _with
from xds.type.v3 import typed_struct_pb2

from gossamer.envoy.validate import validate_config_sync
from gossamer.translate import names, stat_sink, telemetry, telemetry_stats
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import ProxyResources, Translator

SERVICE = telemetry.TelemetryService("127.0.0.1", 18083)


def _translate(requests: str, *, counted: bool = True) -> tuple[ProxyResources, ProxyResources]:
    translator = Translator()
    if counted:
        translator.telemetry_service = SERVICE
    snap = _with(snapshot("strict"), requests)
    return translator.proxy(snap, OUT, BOTH), translator.proxy(snap, GW, BOTH)


def _literals(log: accesslog_pb2.AccessLog) -> dict[str, str]:
    """The logger's view and its literal destination tags, in either mode."""
    if log.name == telemetry.HTTP_GRPC_ACCESS_LOG:
        config = als_pb2.HttpGrpcAccessLogConfig()
        assert log.typed_config.Unpack(config)
        common = config.common_config
        tags = {t.tag: t.literal.value for t in common.custom_tags if t.HasField("literal")}
        return {"view": common.log_name, **tags}
    typed = typed_struct_pb2.TypedStruct()
    assert log.typed_config.Unpack(typed)
    [histogram] = typed.value["histograms"]
    tags = {t["name"]: t["value_format"] for t in histogram["stat"]["tags"]}
    keys = {
        "view": "view",
        "dst": telemetry.DESTINATION_TAG,
        "dst_kind": telemetry.DESTINATION_KIND_TAG,
    }
    return {ours: tags[theirs] for theirs, ours in keys.items() if theirs in tags}


def _loggers(chain: listener_components_pb2.FilterChain) -> list[dict[str, str]]:
    """Each request logger of the chain's HCM."""
    out = []
    for f in chain.filters:
        hcm = hcm_pb2.HttpConnectionManager()
        if f.typed_config.Unpack(hcm):
            out += [
                _literals(log)
                for log in hcm.access_log
                if log.name in (telemetry.HTTP_GRPC_ACCESS_LOG, telemetry_stats.STATS_ACCESS_LOG)
            ]
    return out


@pytest.mark.parametrize("requests", ["stats", "logs"])
def test_each_hop_to_an_external_service_is_counted_once_where_it_is_made(requests: str) -> None:
    sidecar, gw = _translate(requests)
    external = {"view": "gateway", telemetry.DESTINATION_KIND_TAG: "external"}
    for name in ("payments", "mirrors"):  # https and http through the gateway
        listener = gw.listeners[f"egress|default/{name}"]
        for chain in listener.filter_chains:  # (strict: the mTLS chain only)
            [log] = _loggers(chain)
            assert log == {**external, telemetry.DESTINATION_TAG: f"default/{name}"}
    assert "egress|default/ledger" in gw.listeners  # tcp: not counted, nothing to look at
    main = gw.listeners[names.gateway_listener(("default", "egress"))]
    assert [log["view"] for log in _loggers(main.filter_chains[0])] == ["gateway"]

    model_local = snapshot("strict").local_addresses
    views = {}
    for name, port in (("payments", 443), ("mirrors", 80), ("weather", 8080)):
        lname = names.outbound_listener(model_local[("default", name)], port)
        [views[name]] = _loggers(sidecar.listeners[lname].filter_chains[0])
    to_gateway = {
        "view": "outbound",
        telemetry.DESTINATION_TAG: "default/egress",
        telemetry.DESTINATION_KIND_TAG: "gateway",
    }
    assert views == {
        "payments": to_gateway,
        "mirrors": to_gateway,
        "weather": {
            "view": "outbound",
            telemetry.DESTINATION_TAG: "default/weather",
            telemetry.DESTINATION_KIND_TAG: "external",
        },
    }


def test_without_a_telemetry_service_the_egress_listeners_count_nothing() -> None:
    _, gw = _translate("stats", counted=False)
    for name in ("payments", "mirrors"):
        assert _loggers(gw.listeners[f"egress|default/{name}"].filter_chains[0]) == []


@pytest.mark.integration
@pytest.mark.parametrize("requests", ["stats", "logs"])
def test_counted_egress_configs_pass_envoy_validate(requests: str) -> None:
    bootstraps = []
    for res, ident in zip(_translate(requests), (OUT, GW), strict=True):
        bootstrap = static_bootstrap(
            listeners=res.listeners.values(),
            clusters=res.clusters.values(),
            endpoints=res.endpoints.values(),
            routes=res.routes.values(),
            node=ident,
        )
        bootstrap.static_resources.clusters.append(_sds_cluster())
        bootstrap.stats_sinks.append(stat_sink.stats_sink(ident, telemetry.CLUSTER))
        bootstrap.stats_config.CopyFrom(stat_sink.stats_config())
        bootstraps.append(bootstrap)
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda b: validate_config_sync(b, timeout_s=120.0), bootstraps))
