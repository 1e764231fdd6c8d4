"""``GET /metrics`` of a real ``gossamer telemetry serve`` and ``gossamer top`` against it.

Entries come from a synthetic ALS client (two proxies' streams, as Envoy sends them) and
from a real Envoy whose backend stops (503 with Envoy's ``UF`` flag): Istio's
``istio_requests_total`` has exactly what was sent per label set, and ``gossamer top
--once`` shows the services and edges, busiest first."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2
from prometheus_client.parser import text_string_to_metric_families
from telemetry_process import TelemetryProcess

from gossamer.agent.trust import CA_FILE_ENV
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.validate import validate_config
from gossamer.polling import wait_until
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import ca_file, operator_env, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.testing.telemetry import batch, first_message, http_entry, logging_bootstrap
from gossamer.translate.names import outbound_cluster
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(180)]

METHOD = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs"
WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")
API_7 = ProxyIdentity("sidecar", "shop", "api-7", service="api")
API_CLUSTER = outbound_cluster(("shop", "api"), "http")
WEB_SAN = "spiffe://mesh/ns/default/sa/web"
Counts = dict[tuple[str, ...], float]
KEY = ("reporter", "source_workload", "destination_service_name", "response_code")


def service(tmp_path: Path) -> TelemetryProcess:
    return TelemetryProcess(tmp_path, ("127.0.0.1", free_port()), ("127.0.0.1", free_port()))


async def send(
    svc: TelemetryProcess, streams: Iterable[list[als_pb2.StreamAccessLogsMessage]]
) -> None:
    await send_to(svc.grpc_at, streams)


async def send_to(
    grpc_at: tuple[str, int], streams: Iterable[list[als_pb2.StreamAccessLogsMessage]]
) -> None:
    """Each list is one stream (its first message names the proxy), as Envoy sends them."""
    target = f"{grpc_at[0]}:{grpc_at[1]}"
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_unary(
            METHOD,
            request_serializer=als_pb2.StreamAccessLogsMessage.SerializeToString,
            response_deserializer=als_pb2.StreamAccessLogsResponse.FromString,
        )
        for messages in streams:
            await call(iter(messages))


async def requests_counted(svc: TelemetryProcess, n: int) -> None:
    async def reached() -> bool:
        return bool((await svc.get("/v1/ingestion", since="5m"))["requests"] >= n)

    await wait_until(reached, timeout=20, interval=0.1, what=f"{n} requests ingested")


async def scrape(svc: TelemetryProcess, *names: str) -> Counts:
    async with svc.client() as c:
        response = await c.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    return {tuple(s.labels[n] for n in names): s.value for s in families["istio_requests"].samples}


async def gossamer(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the real CLI; its standard output (it must exit 0)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from gossamer.cli.main import run; run()", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**(env or os.environ), "COLUMNS": "250", "NO_COLOR": "1"},
    )  # fmt: skip
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def entries(n: int, **kw: object) -> list[accesslog_pb2.HTTPAccessLogEntry]:
    return [http_entry(**kw) for _ in range(n)]  # type: ignore[arg-type]


async def test_metrics_and_top_count_exactly_what_proxies_sent(tmp_path: Path) -> None:
    svc = service(tmp_path)
    await svc.start()
    try:
        async with httpx.AsyncClient(base_url=svc.url) as anonymous:
            assert (await anonymous.get("/metrics")).status_code == 401
        failed = entries(4, cluster=API_CLUSTER, status=503)
        for entry in failed:
            entry.common_properties.response_flags.upstream_connection_failure = True
        outbound = [
            first_message(WEB_1, "outbound", entries(30, cluster=API_CLUSTER)),
            batch(failed),
            batch(entries(6, cluster=API_CLUSTER, status=404)),
        ]
        inbound = [
            first_message(API_7, "inbound", entries(25, peer_uri=WEB_SAN)),
            batch(entries(3, status=401)),  # no certificate: unauthenticated
        ]
        await send(svc, [outbound, inbound])
        await requests_counted(svc, 68)
        assert await scrape(svc, *KEY, "response_flags") == {
            ("source", "web-1", "api", "200", "-"): 30,
            ("source", "web-1", "api", "503", "UF"): 4,
            ("source", "web-1", "api", "404", "-"): 6,
            ("destination", "unknown", "api", "200", "-"): 25,
            ("destination", "unknown", "api", "401", "-"): 3,
        }
        by_principal = await scrape(svc, "reporter", "source_principal", "source_app")
        assert by_principal[("destination", WEB_SAN, "web")] == 25
        assert by_principal[("destination", "unknown", "unknown")] == 3

        await send(svc, [[first_message(WEB_1, "outbound", entries(5, cluster=API_CLUSTER))]])
        await requests_counted(svc, 73)
        assert (await scrape(svc, *KEY))[("source", "web-1", "api", "200")] == 35

        top = ["top", "--once", "--since", "1h", "--server", svc.url, "--token", svc.token]
        shown = await gossamer(*top)
        lines = [line.split() for line in shown.splitlines()]
        header = lines.index(["services", "(last", "3600", "s)"])
        assert lines[header + 2][:2] == ["shop/api", "service"]  # the busiest first
        edge_rows = {(row[0], row[1]): row for row in lines if row[:1] == ["default/web"]}
        web_api = edge_rows.get(("default/web", "shop/api"))
        assert web_api is not None, shown
        # VIEW RPS 4XX% 5XX% P50 P99 MTLS% REQUESTS: 6 of 45 are 4xx, 4 are 5xx
        assert web_api[2] == "client"
        assert (web_api[4], web_api[5], web_api[-1]) == ("13.3", "8.9", "45")

        view = json.loads(await gossamer(*top, "-o", "json", "--namespace", "default"))
        assert [(e["source"], e["destination"], e["requests"]) for e in view["edges"]] == [
            ("default/web", "shop/api", 45)
        ]
        assert [s["id"] for s in view["services"]] == ["default/web"]
    finally:
        await svc.stop()


async def test_a_real_envoys_503s_are_counted_with_its_response_flag(tmp_path: Path) -> None:
    svc = service(tmp_path)
    await svc.start()
    listen = ("127.0.0.2", free_port("127.0.0.2"))
    try:
        async with HttpBackend("api", host="127.0.0.3") as backend:
            bootstrap = logging_bootstrap(
                WEB_1,
                listen=listen,
                cluster="outbound|default/api|http",
                backend=backend.address,
                telemetry=svc.grpc_at,
            )
            await validate_config(bootstrap)
            async with (
                EnvoyProcess(bootstrap, workdir=tmp_path / "envoy") as _envoy,
                httpx.AsyncClient(timeout=10) as client,
            ):
                url = f"http://{listen[0]}:{listen[1]}/status/200"
                for _ in range(9):
                    assert (await client.get(url)).status_code == 200
                await backend.close()  # the backend goes away: Envoy answers 503 UF
                for _ in range(4):
                    assert (await client.get(url)).status_code == 503
                await requests_counted(svc, 13)
        counts = await scrape(svc, *KEY, "response_flags", "connection_security_policy")
        assert counts == {
            ("source", "web-1", "api", "200", "-", "none"): 9,
            ("source", "web-1", "api", "503", "UF", "none"): 4,
        }
    finally:
        await svc.stop()


async def test_top_reads_the_topology_through_the_control_plane(tmp_path: Path) -> None:
    grpc_at = ("127.0.0.1", free_port())
    telemetry = TelemetrySettings("auto", listen=grpc_at)
    async with running_control_plane(tmp_path, telemetry=telemetry) as app:
        outbound = [
            first_message(WEB_1, "outbound", entries(12, cluster=API_CLUSTER)),
            batch(entries(3, cluster=API_CLUSTER, status=500)),
        ]

        async def delivered() -> bool:  # the supervised child may still be starting
            try:
                await send_to(grpc_at, [outbound])
            except grpc.aio.AioRpcError:
                return False
            return True

        await wait_until(delivered, timeout=30, interval=0.3, what="the telemetry child")
        env = {**operator_env(app), CA_FILE_ENV: str(ca_file(app))}
        top = ["top", "--once", "-o", "json", "--since", "1h", "--server", app.api_url]

        async def shown() -> dict[str, Any] | None:
            view: dict[str, Any] = json.loads(await gossamer(*top, env=env))
            return view if view["edges"] else None

        view = await wait_until(shown, timeout=20, interval=0.3, what="the edge in top")
        assert [
            (e["source"], e["destination"], e["requests"], e["errors5xxPct"])
            for e in view["edges"]  # type: ignore[index]
        ] == [("default/web", "shop/api", 15, 20.0)]
