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
    sample count): what the counters add.

    .venv/bin/python bench/telemetry_stats.py [--seconds 4] [--rounds 3] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import LoadResult, http_load
from dataplane import BACKEND
from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.testing import resources
from gossamer.testing.ports import free_port
from gossamer.translate import stat_sink, telemetry, telemetry_stats
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.types import ProxyIdentity

WHO = ProxyIdentity("sidecar", "default", "web-1", service="web")
CLUSTER = "outbound|default/api|http"
VARIANTS = ("off", "grpc", "stats", "stats-3", "stats-1")


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
    tmp = Path(tempfile.mkdtemp(prefix="telemetry-stats-"))
    token = tmp / "token"
    token.write_text(secrets.token_hex(16))
    svc = ("127.0.0.1", free_port())
    backend = ("127.0.0.1", free_port())
    procs = [
        ManagedProcess(
            [sys.executable, "-c", BACKEND, *map(str, backend)],
            log_path=tmp / "b.log",
            name="backend",
        ),
        ManagedProcess(
            [sys.executable, "-c", "from gossamer.cli.main import run; run()", "telemetry", "serve",
             "--listen", f"{svc[0]}:{svc[1]}", "--http", f"127.0.0.1:{free_port()}",
             "--data", str(tmp / "t.sqlite"), "--token-file", str(token)],
            log_path=tmp / "t.log", name="telemetry",
        ),
    ]  # fmt: skip
    for p in procs:
        await p.start()
    await asyncio.sleep(2)
    envoys = {}
    for name in args.variants:
        listen = ("127.0.0.1", free_port())
        envoy = EnvoyProcess(
            bootstrap(name, listen, backend, svc), workdir=tmp / name, concurrency=1
        )
        await envoy.start()
        envoys[name] = (envoy, listen)
    results: dict[str, list[LoadResult]] = {n: [] for n in envoys}
    try:
        for _, listen in envoys.values():  # warm up
            await http_load(listen, args.connections, max_requests=2000, max_seconds=2)
        order = list(envoys.items())
        for round_ in range(args.rounds):  # each round in another order (the VM drifts)
            for name, (envoy, listen) in (
                order[round_ % len(order) :] + order[: round_ % len(order)]
            ):
                results[name].append(
                    await http_load(
                        listen,
                        args.connections,
                        max_requests=10**7,
                        max_seconds=args.seconds,
                        pids=[envoy.pid],
                    )
                )
        base = LoadResult.pooled(results["off"]).cpu_us_per_request
        for name, rs in results.items():
            r = LoadResult.pooled(rs)
            host, port = envoys[name][0].admin_address or ("", 0)
            async with EnvoyAdmin(f"{host}:{port}") as admin:
                stats = await admin.stats(r"grpc_access_log\.logs_|^gossamer\.")
            shown = {k: v for k, v in list(stats.items())[:6]}
            print(
                f"{name:>8}: {r.cpu_us_per_request:6.1f} us Envoy CPU/request "
                f"({r.cpu_us_per_request / base:4.2f}x), {r.rps:7.0f} rps, p50 {r.ms(50):.2f} ms, "
                f"errors {r.errors}; {len(stats)} stats {shown}"
            )
    finally:
        for envoy, _ in envoys.values():
            await envoy.stop(5)
        for p in procs:
            await p.stop(10)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    asyncio.run(main(p.parse_args()))
