"""A real Envoy counts every request with the stats access logger
(``envoy.access_loggers.stats``, ``translate.telemetry_stats``) and pushes the counts with
its OpenTelemetry stat sink (``translate.stat_sink``) to a real ``gossamer telemetry
serve``, in either layout of its tags (one per field, or all in one): the topology has
exactly the one real edge with exactly the client's counts, 4xx and 5xx apart, p50/p99
within the buckets' 6 % plus the sketch's 1 % plus one rank of what the client measured; no
gRPC access-log entry is sent; and a stopped service that comes back loses nothing (the next
cumulative export carries every request)."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from telemetry_process import TelemetryProcess

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.validate import validate_config
from gossamer.polling import wait_until
from gossamer.testing import resources
from gossamer.testing.backends import HttpBackend
from gossamer.testing.ports import free_port
from gossamer.translate import stat_sink, telemetry, telemetry_stats
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(240)]

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")
CLUSTER = "outbound|default/api|http"
ENVOY_HOST, BACKEND_HOST = "127.0.0.2", "127.0.0.3"
#: the buckets' bound, the sketch's, and slack for the ms the client's clock adds
LATENCY_SLACK = 1.06 * 1.01


def stats_bootstrap(
    listen: tuple[str, int],
    backend: tuple[str, int],
    svc: tuple[str, int],
    layout: telemetry_stats.Layout = "joined",
) -> bootstrap_pb2.Bootstrap:
    table = resources.route_configuration("routes", {"*": CLUSTER})
    table.virtual_hosts[0].routes[0].name = "default"
    listener = resources.http_listener("outbound", listen, table)
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    log = telemetry_stats.access_log(
        telemetry.OUTBOUND,
        telemetry.outbound_tags(("default", "api")),
        counters="none",
        layout=layout,
    )
    hcm.access_log.append(log)
    listener.filter_chains[0].filters[0].typed_config.Pack(hcm)
    out = static_bootstrap(
        listeners=[listener],
        clusters=[
            resources.static_cluster(CLUSTER, [backend]),
            resources.static_cluster(telemetry.CLUSTER, [svc], http2=True),
        ],
        node=WEB_1,
    )
    out.stats_sinks.append(stat_sink.stats_sink(WEB_1, telemetry.CLUSTER))
    out.stats_flush_interval.FromTimedelta(timedelta(seconds=1))  # the tests' pace
    out.stats_config.CopyFrom(stat_sink.stats_config())
    return out


def rank_bounds(values: list[float], q: float) -> tuple[float, float]:
    ordered = sorted(values)
    r = int(q * (len(ordered) - 1))
    return ordered[max(r - 1, 0)], ordered[min(r + 1, len(ordered) - 1)]


async def counted(svc: TelemetryProcess, n: int) -> list[dict[str, Any]]:
    async def reached() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = (await svc.get("/v1/topology", since="5m"))["edges"]
        return found if sum(e["requests"] for e in found) >= n else None

    found: list[dict[str, Any]] = await wait_until(  # type: ignore[assignment]
        reached, timeout=30, interval=0.3, what=f"{n} requests in the topology"
    )
    return found


@pytest.mark.parametrize("layout", ["joined", "tags"])
async def test_the_stats_logger_counts_exactly_what_the_client_sent(
    tmp_path: Path, layout: telemetry_stats.Layout
) -> None:
    svc = TelemetryProcess(tmp_path, ("127.0.0.1", free_port()), ("127.0.0.1", free_port()))
    await svc.start()
    rng = random.Random(7)
    plan = ["ok"] * 40 + ["503"] * 9 + ["404"] * 6
    rng.shuffle(plan)
    waited: list[float] = []
    measured: list[float] = []
    try:
        async with HttpBackend("api", host=BACKEND_HOST) as backend:
            listen = (ENVOY_HOST, free_port(ENVOY_HOST))
            bootstrap = stats_bootstrap(listen, backend.address, svc.grpc_at, layout)
            await validate_config(bootstrap)
            async with (
                EnvoyProcess(bootstrap, workdir=tmp_path / "envoy") as envoy,
                httpx.AsyncClient(timeout=10) as client,
            ):
                base = f"http://{listen[0]}:{listen[1]}"
                for kind in plan:
                    delay = rng.choice((4, 9, 15, 25, 40, 70)) if kind == "ok" else 0
                    path = f"/delay/{delay}" if kind == "ok" else f"/status/{kind}"
                    started = time.perf_counter()
                    response = await client.get(base + path)
                    measured.append((time.perf_counter() - started) * 1000)
                    waited.append(float(delay))
                    assert response.status_code == (200 if kind == "ok" else int(kind))
                [edge] = await counted(svc, len(plan))
                logged = await envoy.admin.stats(r"grpc_access_log\.logs_written")
                # the service stopped and back: what finished meanwhile comes with the
                # next cumulative export, nothing lost
                await svc.stop()
                for _ in range(7):
                    assert (await client.get(base + "/status/503")).status_code == 503
                await svc.start()
                [after] = await counted(svc, len(plan) + 7)
        assert (edge["source"], edge["destination"], edge["view"]) == (
            "default/web",
            "default/api",
            "client",
        )
        assert (edge["requests"], edge["errors4xx"], edge["errors5xx"]) == (55, 6, 9)
        assert edge["mtls"] == 0.0
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            low, _ = rank_bounds(waited, q)
            _, high = rank_bounds(measured, q)
            value = edge["latencyMs"][name]
            assert low / LATENCY_SLACK <= value <= high * LATENCY_SLACK, (name, low, value, high)
        assert not logged.get("access_logs.grpc_access_log.logs_written"), logged
        assert (after["requests"], after["errors5xx"]) == (62, 16), after
        ingestion = await svc.get("/v1/ingestion", since="5m")
        assert ingestion["entries"] == 0, ingestion
        assert ingestion["requestStats"]["requestsByNode"] == {"sidecar~default~web-1": 7}
    finally:
        await svc.stop()
