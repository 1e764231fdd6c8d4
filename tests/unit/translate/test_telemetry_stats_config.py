"""The stats access logger (``translate.telemetry_stats``) and the stat sink that keeps its
stats (``translate.stat_sink``): each view's tags, the scope Envoy 1.40 wants
(``stats_scope``, through a TypedStruct), the sink keeping exactly the logger's stats with
their tags, the latency buckets; and a bootstrap with all of them passes ``envoy --mode
validate`` (deprecated fields refused)."""

from __future__ import annotations

import itertools

from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from xds.type.v3 import typed_struct_pb2

from gossamer.envoy.validate import validate_config_sync
from gossamer.testing import resources
from gossamer.translate import stat_sink, telemetry, telemetry_stats
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.types import ProxyIdentity

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")


def _struct(log_name: str, **kwargs: object) -> dict[str, object]:
    log = telemetry_stats.access_log(log_name, **kwargs)  # type: ignore[arg-type]
    assert log.name == "envoy.access_loggers.stats"
    typed = typed_struct_pb2.TypedStruct()
    assert log.typed_config.Unpack(typed)
    assert typed.type_url.endswith("envoy.extensions.access_loggers.stats.v3.Config")
    return dict(typed.value.items())


def _tag_names(struct: dict[str, object]) -> list[str]:
    [histogram] = struct["histograms"]  # type: ignore[misc]
    return [t["name"] for t in histogram["stat"]["tags"]]  # type: ignore[index]


def test_each_view_tags_what_it_needs_and_the_scope_is_not_the_deprecated_prefix() -> None:
    outbound = _struct(telemetry.OUTBOUND, tags=telemetry.outbound_tags(("default", "api")))
    assert outbound["stats_scope"] == {"prefix": "gossamer"}
    assert "stat_prefix" not in outbound
    assert _tag_names(outbound) == [
        "view", "dst", "code", "method", "route", "cluster", "host", "peer",
    ]  # fmt: skip
    inbound = _struct(telemetry.INBOUND, counters="none")
    assert _tag_names(inbound) == ["view", "code", "method", "route", "peer"]
    assert "counters" not in inbound
    [histogram] = inbound["histograms"]  # type: ignore[misc]
    assert histogram["unit"] == "Microseconds"  # type: ignore[index]
    assert histogram["stat"]["tags"][-1]["value_format"] == "%DOWNSTREAM_PEER_URI_SAN%"  # type: ignore[index]


def test_the_sink_keeps_the_loggers_stats_with_their_tags() -> None:
    config = stat_sink.sink_config(WEB_1, "xds")
    assert config.emit_tags_as_attributes.value is True
    kept = {
        (m.predicate.single_predicate.value_match.exact
         or m.predicate.single_predicate.value_match.prefix)
        for m in config.custom_metric_conversions.matcher_list.matchers
    }  # fmt: skip
    assert kept == {*stat_sink.METRICS, *(f"{n}." for n in stat_sink.REQUEST_METRICS)}
    buckets = stat_sink.LATENCY_BUCKETS_US
    assert buckets == tuple(sorted(buckets)) and buckets[0] == 10.0 and buckets[-1] == 1e8
    assert max(b / a for a, b in itertools.pairwise(buckets)) < 1.128


def test_a_bootstrap_with_the_logger_on_each_side_and_the_sink_passes_envoy_validate() -> None:
    listeners = []
    for i, (log_name, tags) in enumerate(
        (
            (telemetry.OUTBOUND, telemetry.outbound_tags(("default", "api"), external=True)),
            (telemetry.INBOUND, None),
            (telemetry.GATEWAY, None),
        )
    ):
        table = resources.route_configuration(f"routes-{i}", {"*": "c"})
        listener = resources.http_listener(f"l-{i}", ("127.0.0.1", 10000 + i), table)
        hcm = hcm_pb2.HttpConnectionManager()
        listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
        hcm.access_log.append(telemetry_stats.access_log(log_name, tags))
        listener.filter_chains[0].filters[0].typed_config.Pack(hcm)
        listeners.append(listener)
    bootstrap = static_bootstrap(
        listeners=listeners,
        clusters=[
            resources.static_cluster("c", [("127.0.0.1", 9)]),
            resources.static_cluster("xds", [("127.0.0.1", 10)], http2=True),
        ],
        node=WEB_1,
    )
    bootstrap.stats_sinks.append(stat_sink.stats_sink(WEB_1, "xds"))
    bootstrap.stats_config.CopyFrom(stat_sink.stats_config())
    validate_config_sync(bootstrap, timeout_s=120.0)
