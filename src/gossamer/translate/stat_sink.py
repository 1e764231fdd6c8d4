"""Each proxy's own access-log counters, pushed for loss reconciliation (docs/telemetry.md,
"Loss").

Envoy counts an entry its gRPC access logger could not deliver as written (measured:
``logs_written`` goes up and ``logs_dropped`` stays 0 while the service is down), so only
Envoy's counter compared with what the telemetry service received shows a gap. Every
bootstrap (``translate.bootstrap.ads_bootstrap``) therefore carries Envoy's OpenTelemetry
stat sink (``envoy.stat_sinks.open_telemetry``) that pushes, every ``FLUSH_INTERVAL``,
only the few counters reconciliation needs (``METRICS``; every other stat is dropped in
the sink by ``custom_metric_conversions``, not in Envoy's own stats, which admin still
shows whole), under their full names (``use_tag_extracted_name`` off: default tag
extraction mangles dotted names), with the proxy's node id and topology node as resource
attributes.

A stat sink is bootstrap-level and Envoy refuses one whose gRPC cluster is not static, so
it cannot follow the telemetry address the control plane hands out over CDS. It is sent to
the one static gRPC cluster every bootstrap already has: ``gossamer-xds``, the control
plane (plaintext or mTLS, as ADS), which relays each export to the telemetry service it
runs or knows (``telemetry.relay``). The bootstrap thus never depends on where the
telemetry service is, and a control plane restart that moves it changes no proxy.
"""

from __future__ import annotations

from datetime import timedelta

from envoy.config.metrics.v3 import stats_pb2
from envoy.extensions.matching.common_inputs.stats.v3 import stats_pb2 as stat_inputs_pb2
from envoy.extensions.stat_sinks.open_telemetry.v3 import open_telemetry_pb2
from envoy.extensions.tracers.opentelemetry.resource_detectors.v3 import (
    static_config_resource_detector_pb2 as static_detector_pb2,
)
from google.protobuf import wrappers_pb2

from gossamer.translate import telemetry_stats
from gossamer.translate.common import any_of
from gossamer.types import ProxyIdentity

OPEN_TELEMETRY_SINK = "envoy.stat_sinks.open_telemetry"
STATIC_DETECTOR = "envoy.tracers.opentelemetry.resource_detectors.static_config"
#: Envoy's counters of all its gRPC access loggers together (Envoy keeps no per-logger ones)
LOGS_WRITTEN = "access_logs.grpc_access_log.logs_written"
LOGS_DROPPED = "access_logs.grpc_access_log.logs_dropped"
#: seconds since the Envoy started: a restart (counters from 0) is told apart by it
UPTIME = "server.uptime"
METRICS = (LOGS_WRITTEN, LOGS_DROPPED, UPTIME)
#: resource attributes (``telemetry.stat_sink`` reads them)
NODE_ATTRIBUTE = "gossamer.node_id"
SERVICE_ATTRIBUTE = "service.name"
#: how often Envoy pushes: a gap shows this long (plus the service's grace) after it opened
FLUSH_INTERVAL = timedelta(seconds=10)
#: the stats access logger's stats (``translate.telemetry_stats``): each kept under its name
#: without the tags, which travel as attributes
REQUEST_METRICS = tuple(
    f"{telemetry_stats.PREFIX}.{name}"
    for name in (telemetry_stats.DURATION, telemetry_stats.ATTEMPTS, *telemetry_stats.BYTES)
)


def _latency_buckets_us() -> tuple[float, ...]:
    """Upper bounds (us) of the latency histogram: 24 per decade from 10 us to 100 s, each a
    number of two significant digits (the edges of Envoy's own log-linear bins, so no
    bucket splits a bin), neighbours at most 1.127x apart (``telemetry.stats_records``
    takes a bucket's requests at a value within 6 % of each)."""
    mantissas = (10, 11, 12, 13, 14, 15, 16, 18, 20, 22, 24, 26, 28, 30, 33, 36, 40, 45, 50,
                 56, 63, 71, 80, 90)  # fmt: skip
    return (*(float(m * 10**e) for e in range(7) for m in mantissas), 1e8)


LATENCY_BUCKETS_US = _latency_buckets_us()


def topology_node(proxy: ProxyIdentity) -> str:
    """The proxy's node in the telemetry topology: ``<ns>/<service>`` of a sidecar,
    ``<ns>/<name>`` of a gateway (as ``telemetry.entries.Reporter.id``)."""
    name = proxy.service if proxy.kind == "sidecar" and proxy.service else proxy.name
    return f"{proxy.namespace}/{name}"


def sink_config(proxy: ProxyIdentity, cluster: str) -> open_telemetry_pb2.SinkConfig:
    """OTLP metrics to ``cluster`` (gRPC): ``METRICS`` only, full names, cumulative."""
    config = open_telemetry_pb2.SinkConfig(
        use_tag_extracted_name=wrappers_pb2.BoolValue(value=False),
        emit_tags_as_attributes=wrappers_pb2.BoolValue(value=True),
    )
    config.grpc_service.envoy_grpc.cluster_name = cluster
    attributes = {NODE_ATTRIBUTE: proxy.node_id, SERVICE_ATTRIBUTE: topology_node(proxy)}
    detector = config.resource_detectors.add(name=STATIC_DETECTOR)
    detector.typed_config.CopyFrom(
        any_of(static_detector_pb2.StaticConfigResourceDetectorConfig(attributes=attributes))
    )
    matcher = config.custom_metric_conversions
    for name, prefix in [(n, False) for n in METRICS] + [(n, True) for n in REQUEST_METRICS]:
        field = matcher.matcher_list.matchers.add()
        predicate = field.predicate.single_predicate
        predicate.input.name = "stat_full_name"
        predicate.input.typed_config.CopyFrom(any_of(stat_inputs_pb2.StatFullNameMatchInput()))
        if prefix:  # the full name goes on with the tags: ``<name>.<tag>.<value>...``
            predicate.value_match.prefix = name + "."
        else:
            predicate.value_match.exact = name
        field.on_match.action.name = "keep"
        field.on_match.action.typed_config.CopyFrom(
            any_of(open_telemetry_pb2.SinkConfig.ConversionAction(metric_name=name))
        )
    matcher.on_no_match.action.name = "drop"
    matcher.on_no_match.action.typed_config.CopyFrom(
        any_of(open_telemetry_pb2.SinkConfig.DropAction())
    )
    return config


def stats_config() -> stats_pb2.StatsConfig:
    """The bootstrap's ``stats_config``: the latency histogram's buckets."""
    out = stats_pb2.StatsConfig()
    setting = out.histogram_bucket_settings.add(buckets=LATENCY_BUCKETS_US)
    setting.match.prefix = f"{telemetry_stats.PREFIX}.{telemetry_stats.DURATION}"
    return out


def stats_sink(proxy: ProxyIdentity, cluster: str) -> stats_pb2.StatsSink:
    return stats_pb2.StatsSink(
        name=OPEN_TELEMETRY_SINK, typed_config=any_of(sink_config(proxy, cluster))
    )
