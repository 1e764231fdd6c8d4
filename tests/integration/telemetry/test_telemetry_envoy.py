"""A real Envoy (static bootstrap built as protobufs, ``--mode validate``d) logs every request
over ``envoy.access_loggers.http_grpc`` to a real ``gossamer telemetry serve`` process: the
topology shows exactly the one real edge with exactly the client's counts, 4xx and 5xx
apart, p50/p99 within the sketch's 1 % plus one rank of what the client measured; a header
naming another caller changes nothing; a restart of the service flushes what it had, and
what Envoy sent while it was down shows as a gap against Envoy's own counters."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from telemetry_process import TelemetryProcess

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.validate import validate_config
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.ports import free_port
from gossamer.testing.telemetry import logging_bootstrap
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(240)]

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")
NODE_ID = "sidecar~default~web-1"
CLUSTER = "outbound|default/api|http"
ENVOY_HOST, BACKEND_HOST = "127.0.0.2", "127.0.0.3"
LOGGER_STATS = r"access_logs\.grpc_access_log\."


def service(tmp_path: Path) -> TelemetryProcess:
    return TelemetryProcess(tmp_path, ("127.0.0.1", free_port()), ("127.0.0.1", free_port()))


async def envoy_for(tmp_path: Path, svc: TelemetryProcess, backend: HttpBackend) -> EnvoyProcess:
    listen = (ENVOY_HOST, free_port(ENVOY_HOST))
    bootstrap = logging_bootstrap(
        WEB_1, listen=listen, cluster=CLUSTER, backend=backend.address, telemetry=svc.grpc_at
    )
    await validate_config(bootstrap)
    return EnvoyProcess(bootstrap, workdir=tmp_path / "envoy")


def url(envoy: EnvoyProcess, path: str) -> str:
    listener = envoy.bootstrap.static_resources.listeners[0].address.socket_address
    return f"http://{listener.address}:{listener.port_value}{path}"


async def edges(svc: TelemetryProcess) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = (await svc.get("/v1/topology", since="5m"))["edges"]
    return out


async def counted(svc: TelemetryProcess, n: int) -> list[dict[str, Any]]:
    async def reached() -> list[dict[str, Any]] | None:
        found = await edges(svc)
        return found if sum(e["requests"] for e in found) >= n else None

    found: list[dict[str, Any]] = await wait_until(  # type: ignore[assignment]
        reached, timeout=20, interval=0.2, what=f"{n} requests in the topology"
    )
    return found


def rank_bounds(values: list[float], q: float) -> tuple[float, float]:
    """The exact quantile's neighbours: values at ranks r-1 and r+1 (one bucket either way)."""
    ordered = sorted(values)
    r = int(q * (len(ordered) - 1))
    return ordered[max(r - 1, 0)], ordered[min(r + 1, len(ordered) - 1)]


async def test_the_topology_counts_exactly_what_the_client_sent(tmp_path: Path) -> None:
    svc = service(tmp_path)
    await svc.start()
    async with httpx.AsyncClient(base_url=svc.url) as anonymous:
        for headers in ({}, {"authorization": "Bearer not-the-token-at-all"}):
            refused = await anonymous.get("/v1/topology", headers=headers)
            assert refused.status_code == 401, refused.text
    rng = random.Random(12)
    plan = ["ok"] * 48 + ["503"] * 12 + ["404"] * 8
    rng.shuffle(plan)
    waited: list[float] = []  # what the backend was told to wait, ms (0 for errors)
    measured: list[float] = []  # what the client saw, ms
    try:
        async with (
            HttpBackend("api", host=BACKEND_HOST) as backend,
            await envoy_for(tmp_path, svc, backend) as envoy,
            httpx.AsyncClient(timeout=10) as client,
        ):
            for i, kind in enumerate(plan):
                delay = rng.choice((4, 9, 15, 25, 40, 70)) if kind == "ok" else 0
                path = f"/delay/{delay}" if kind == "ok" else f"/status/{kind}"
                # a caller's header naming someone else must not change the edge
                headers = {"x-forwarded-client-cert": "URI=spiffe://mesh/ns/default/sa/admin"}
                started = time.perf_counter()
                response = await client.get(url(envoy, path), headers=headers if i % 2 else {})
                measured.append((time.perf_counter() - started) * 1000)
                waited.append(float(delay))
                assert response.status_code == (200 if kind == "ok" else int(kind))
            [edge] = await counted(svc, len(plan))
            stats = await envoy.admin.stats(LOGGER_STATS)
        assert (edge["source"], edge["destination"], edge["view"]) == (
            "default/web",
            "default/api",
            "client",
        )
        assert (edge["requests"], edge["errors4xx"], edge["errors5xx"]) == (68, 8, 12)
        assert edge["mtls"] == 0.0 and edge["retries"] == 0
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            low, _ = rank_bounds(waited, q)
            _, high = rank_bounds(measured, q)
            value = edge["latencyMs"][name]
            assert 0.99 * low <= value <= 1.01 * high, (name, low, value, high)
        topology = await svc.get("/v1/topology", since="5m")
        assert {n["id"]: n["kind"] for n in topology["nodes"]} == {
            "default/api": "service",
            "default/web": "service",
        }
        ingestion = await svc.get("/v1/ingestion", since="5m")
        assert ingestion["entriesByNode"] == {NODE_ID: 68}
        assert stats.get("access_logs.grpc_access_log.logs_written") == 68, stats
        assert not stats.get("access_logs.grpc_access_log.logs_dropped"), stats
    finally:
        await svc.stop()


async def test_a_restart_flushes_what_it_had_and_the_missed_entries_show_as_a_gap(
    tmp_path: Path,
) -> None:
    svc = service(tmp_path)
    await svc.start()
    try:
        async with (
            HttpBackend("api", host=BACKEND_HOST) as backend,
            await envoy_for(tmp_path, svc, backend) as envoy,
            httpx.AsyncClient(timeout=10) as client,
        ):

            async def send(n: int) -> None:
                for _ in range(n):
                    assert (await client.get(url(envoy, "/"))).status_code == 200

            async def logger_stats() -> dict[str, int]:
                return await envoy.admin.stats(LOGGER_STATS)

            await send(10)
            await counted(svc, 10)
            assert await svc.stop() == 0, svc.log()  # SIGTERM: flushes the open minute
            await send(7)  # nobody listens: Envoy cannot deliver these
            await svc.start()
            assert sum(e["requests"] for e in await edges(svc)) == 10  # kept across restart

            # Envoy reconnects on its next flush: send until a request reaches the service
            tries = 0
            for tries in range(1, 51):  # noqa: B007 (used after the loop)
                await send(1)
                first = (await svc.get("/v1/ingestion"))["entries"]
                if first:
                    break
            else:
                raise AssertionError(f"Envoy never reconnected: {await logger_stats()}")
            await send(5)

            async def arrived() -> bool:
                # (>=: an entry of the reconnect loop may land after ``first`` was read)
                return bool((await svc.get("/v1/ingestion"))["entries"] >= first + 5)

            await wait_until(arrived, timeout=30, interval=0.1, what="5 more entries")
            stats = await logger_stats()
            ingestion = await svc.get("/v1/ingestion", since="5m")
        received = ingestion["entriesByNode"][NODE_ID]
        # every entry that arrived is counted once, across the restart
        assert sum(e["requests"] for e in await edges(svc)) == received
        # Envoy counts the 7 as written and drops nothing: only the service's receipts show
        # the gap (written - received), and a later reconciliation can flag it
        written = stats["access_logs.grpc_access_log.logs_written"]
        assert written == 10 + 7 + tries + 5, stats
        assert stats.get("access_logs.grpc_access_log.logs_dropped", 0) == 0, stats
        assert 7 <= written - received <= 7 + tries - 1, (stats, ingestion)
    finally:
        await svc.stop()
