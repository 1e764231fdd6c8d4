"""No false gap for RBAC denials: a TLS-capable sidecar has two gRPC access loggers on its
inbound, the telemetry service's request log and the denial log to its agent
(``translate.denial_log``), and Envoy counts both in one ``logs_written``. Through real
agents, Envoys and the control plane's telemetry child (``Mesh.spec.telemetry.requests:
logs``), reviews' sidecar denies (enforce) and would deny (audit) requests web sends
through its own sidecar: Envoy's counter is the entries received plus one per denial, and
the service flags no gap, since nothing was lost (docs/telemetry.md, "Loss"). A sidecar
without its agent's socket denies too (RBAC needs no TLS) but has no denial log: each of its
entries is counted once, and what it wrote is exactly what was received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.agent.mtls_mesh import Mesh, two_hosts, wait_served
from tests.integration.ngac.ngac_mesh import INBOUND_STATS, manifests, policy, reviews_stats

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import (
    api_client,
    apply_manifests,
    apply_yaml,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.translate.stat_sink import LOGS_DROPPED, LOGS_WRITTEN
from gossamer.types import API_VERSION, ProxyIdentity

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

REVIEWS_NODE = "sidecar~default~reviews-1"
DENIED = f"{INBOUND_STATS}rbac.denied"
SHADOW_DENIED = f"{INBOUND_STATS}rbac.shadow_denied"
COUNTERS = r"^access_logs\.grpc_access_log\.logs_(written|dropped)$|^http\.inbound\|http\.rbac\."


def with_logs(yaml: str) -> str:
    """``yaml`` with the Mesh logging every request (``telemetry.requests: logs``)."""
    before = "authorization: {mode: enforce}}"
    assert before in yaml
    return yaml.replace(before, "authorization: {mode: enforce}, telemetry: {requests: logs}}")


AUDIT = (
    "spec: {ports: [{name: http, port: 9080}]}",
    "spec: {ports: [{name: http, port: 9080}], authorization: {mode: audit}}",
)


async def send(client: httpx.AsyncClient, mesh: Mesh, path: str, n: int, status: int) -> None:
    """``n`` requests for ``path`` through web's sidecar, each answered ``status``."""
    for _ in range(n):
        assert (await client.get(f"{mesh.outbound}{path}")).status_code == status


async def answered(client: httpx.AsyncClient, mesh: Mesh, path: str, status: int) -> None:
    async def done() -> bool:
        return (await client.get(f"{mesh.outbound}{path}")).status_code == status

    await wait_until(done, timeout=60, interval=0.25, what=f"{path} answered {status}")


async def settled(
    api: httpx.AsyncClient, mesh: Mesh | EnvoyProcess
) -> tuple[dict[str, Any], dict[str, int]]:
    """``/v1/ingestion`` once a sample of reviews' counters as they are now (no more
    traffic) was compared, and those counters (Envoy's own, from its admin API)."""

    async def done() -> tuple[dict[str, Any], dict[str, int]] | None:
        if isinstance(mesh, EnvoyProcess):
            stats = await mesh.stats(COUNTERS)
        else:
            stats = await reviews_stats(mesh, COUNTERS)
        r = await api.get("/v1/ingestion", params={"since": "5m"})
        assert r.status_code in (200, 503), r.text  # (503: the child is starting)
        if r.status_code != 200:
            return None
        ingestion: dict[str, Any] = r.json()
        node = ingestion["reconciliation"]["nodes"].get(REVIEWS_NODE)
        written = stats.get(LOGS_WRITTEN, 0) + stats.get(LOGS_DROPPED, 0)
        return (ingestion, stats) if node is not None and node["written"] == written else None

    found: tuple[dict[str, Any], dict[str, int]] = await wait_until(  # type: ignore[assignment]
        done, timeout=90, interval=0.5, what="a sample of reviews' counters compared"
    )
    return found


def assert_no_gap(ingestion: dict[str, Any], stats: dict[str, int]) -> None:
    received = ingestion["entriesByNodeSinceStart"][REVIEWS_NODE]
    denials = stats.get(DENIED, 0) + stats.get(SHADOW_DENIED, 0)
    # the premise: Envoy counted every denial twice (request log + denial log), lost nothing
    assert stats[LOGS_WRITTEN] == received + denials, (stats, received)
    assert stats.get(LOGS_DROPPED, 0) == 0
    node = ingestion["reconciliation"]["nodes"][REVIEWS_NODE]
    assert (node["written"], node["received"], node["outstanding"]) == (
        stats[LOGS_WRITTEN],
        stats[LOGS_WRITTEN],
        0,
    ), node
    assert [g for g in ingestion["gaps"] if g["node"] == REVIEWS_NODE] == []
    assert (ingestion["gap"], ingestion["missingEntries"]) == (False, 0), ingestion["gaps"]
    assert ingestion.get("denialLogEntries") == denials  # what the service counted twice


async def test_denied_and_would_be_denied_requests_flag_no_gap(tmp_path: Path) -> None:
    yaml = with_logs(manifests("enforce")) + "---" + policy()
    async with (
        two_hosts(tmp_path, yaml, telemetry=TelemetrySettings("auto")) as mesh,
        httpx.AsyncClient(timeout=10, trust_env=False) as client,
        api_client(mesh.app) as api,
    ):
        await wait_served(mesh)
        await answered(client, mesh, "/admin", 403)  # web may not GET /admin: enforced
        await send(client, mesh, "/ok", 20, 200)
        await send(client, mesh, "/admin", 10, 403)
        ingestion, stats = await settled(api, mesh)
        assert stats[DENIED] >= 11 and stats.get(SHADOW_DENIED, 0) == 0, stats
        assert_no_gap(ingestion, stats)

        # audit: /admin is served, and would have been denied (shadow rules)
        await apply_yaml(mesh.app, yaml.replace(*AUDIT), wait=True)
        await answered(client, mesh, "/admin", 200)
        await send(client, mesh, "/admin", 10, 200)
        await send(client, mesh, "/ok", 5, 200)
        ingestion, stats = await settled(api, mesh)
        assert stats[SHADOW_DENIED] >= 11, stats
        assert_no_gap(ingestion, stats)
        topology = (await api.get("/v1/topology", params={"since": "5m"})).json()
        nodes = {n["id"]: n for n in topology["nodes"]}
        assert (nodes["default/reviews"]["gap"], nodes["default/reviews"]["missingEntries"]) == (
            False,
            0,
        )


async def test_a_sidecar_without_a_denial_log_has_its_denials_counted_once(
    tmp_path: Path,
) -> None:
    host = "127.0.0.61"
    port = free_port(host)
    mesh = {
        "apiVersion": API_VERSION,
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {"authorization": {"mode": "enforce"}, "telemetry": {"requests": "logs"}},
    }
    async with (
        HttpBackend("reviews-1", host=host) as app_backend,
        running_control_plane(tmp_path, telemetry=TelemetrySettings("auto")) as app,
    ):
        manifests = [
            mesh,
            service("reviews", 9080),
            workload("reviews-1", "reviews", host, port, app_backend.address[1]),
        ]
        await apply_manifests(app, manifests, wait=False)
        # no agent: its bootstrap has no SDS socket, so no TLS and no denial log
        reviews = mesh_envoy(app, ProxyIdentity("sidecar", "default", "reviews-1"))
        async with api_client(app) as api:

            async def child_up() -> bool:  # (else Envoy's first entries are lost: a gap)
                return (await api.get("/v1/ingestion")).status_code == 200

            await wait_until(child_up, timeout=60, interval=0.25, what="the telemetry child")
        async with (
            reviews,
            httpx.AsyncClient(timeout=10, trust_env=False) as client,
            api_client(app) as api,
        ):

            async def denied() -> bool:
                try:
                    return (await client.get(f"http://{host}:{port}/probe")).status_code == 403
                except httpx.TransportError:
                    return False

            await wait_until(denied, timeout=60, interval=0.25, what="reviews denying callers")
            for _ in range(10):  # nobody is granted anything: every request is denied
                assert (await client.get(f"http://{host}:{port}/x")).status_code == 403
            ingestion, stats = await settled(api, reviews)
        assert stats[DENIED] >= 11 and app_backend.requests == 0, stats
        received = ingestion["entriesByNodeSinceStart"].get(REVIEWS_NODE)
        assert received == stats[LOGS_WRITTEN], (stats, ingestion)
        assert ingestion.get("denialLogEntries") == 0
        node = ingestion["reconciliation"]["nodes"][REVIEWS_NODE]
        assert (node["written"], node["received"], node["outstanding"]) == (
            stats[LOGS_WRITTEN],
            stats[LOGS_WRITTEN],
            0,
        ), node
        assert (ingestion["gap"], ingestion["gaps"]) == (False, [])
