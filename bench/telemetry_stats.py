"""Envoy's CPU per request: the gRPC access logger against Envoy's stats access logger.

One Envoy (one worker, 16 connections) routes ``GET /bench`` to a tiny asyncio backend;
variants of its HCM, measured in interleaved rounds in the same run (Envoy CPU per request,
ratio to no logger; docs/telemetry.md, "Cost"):

  * off: no access logger;
  * grpc: the translator's gRPC access logger (``translate.telemetry``, outbound, with its
    custom tags, 16 KiB buffer) to a real ``gossamer telemetry serve``;
  * stats: the stats access logger (``envoy.access_loggers.stats``) of
    ``translate.telemetry_stats`` (the client view's tags, a latency histogram, byte and
    attempt counters), its stats pushed every 10 s by the OpenTelemetry stat sink of
    ``translate.stat_sink`` to the same service (the sink's flush is in the figure too);
  * stats-1: the same logger with the latency histogram only (the request count is its
    sample count): what the counters add;
  * stats-1j: stats-1 with every field in one tag (``layout="joined"``): what formatting
    and storing eight tags apart costs.

    .venv/bin/python bench/telemetry_stats.py [--seconds 4] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _envoy_variants import add_arguments, compare
from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from gossamer.testing import resources
from gossamer.translate import stat_sink, telemetry, telemetry_stats
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.types import ProxyIdentity

WHO = ProxyIdentity("sidecar", "default", "web-1", service="web")
CLUSTER = "outbound|default/api|http"
VARIANTS = ("off", "grpc", "stats", "stats-3", "stats-1", "stats-1j")


def _logger(variant: str) -> accesslog_pb2.AccessLog | None:
    tags = telemetry.outbound_tags(("default", "api"))
    if variant == "grpc":
        return telemetry.access_log(telemetry.OUTBOUND, tags)
    if variant == "stats":
        return telemetry_stats.access_log(telemetry.OUTBOUND, tags)
    if variant == "stats-3":
        return telemetry_stats.access_log(telemetry.OUTBOUND, tags, counters="wire")
    if variant == "stats-1":
        return telemetry_stats.access_log(telemetry.OUTBOUND, tags, counters="none")
    if variant == "stats-1j":
        return telemetry_stats.access_log(
            telemetry.OUTBOUND, tags, counters="none", layout="joined"
        )
    return None


def bootstrap(
    variant: str, listen: tuple[str, int], backend: tuple[str, int], svc: tuple[str, int]
) -> bootstrap_pb2.Bootstrap:
    table = resources.route_configuration("routes", {"*": CLUSTER})
    listener = resources.http_listener("outbound", listen, table)
    log = _logger(variant)
    if log is not None:
        hcm = hcm_pb2.HttpConnectionManager()
        listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
        hcm.access_log.append(log)
        listener.filter_chains[0].filters[0].typed_config.Pack(hcm)
    out = static_bootstrap(
        listeners=[listener],
        clusters=[
            resources.static_cluster(CLUSTER, [backend]),
            resources.static_cluster(telemetry.CLUSTER, [svc], http2=True),
        ],
        node=WHO,
    )
    if variant.startswith("stats"):
        out.stats_sinks.append(stat_sink.stats_sink(WHO, telemetry.CLUSTER))
        out.stats_flush_interval.FromTimedelta(stat_sink.FLUSH_INTERVAL)
        out.stats_config.CopyFrom(stat_sink.stats_config())
    return out


async def main(args: argparse.Namespace) -> None:
    await compare(
        args.variants, bootstrap, args, stats_filter=r"grpc_access_log\.logs_|^gossamer\."
    )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    asyncio.run(main(p.parse_args()))
