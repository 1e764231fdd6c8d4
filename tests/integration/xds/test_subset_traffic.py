"""Subsets through real Envoy: one cluster per (service port, subset) next to the plain one.

A Route that sends some requests to a subset must leave every other request to that service
reaching all its healthy instances (east-west and through a gateway), and a subset with no
healthy instance answers 503 ``UH`` without ever falling back to another version. Endpoint
changes (health, a label moving a workload between subsets) reach the subset clusters too.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import HttpBackend, apply_manifests, free_port, mesh_envoy
from gossamer.testing.controlplane import running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CLIENT = "127.0.0.2"
HOSTS = {"v1": "127.0.0.3", "v2": "127.0.0.4", "v3": "127.0.0.5"}
V3_CLUSTER = "outbound|default/reviews|http|version=v3"


def reviews(version: str, port: int, *, health: str = "healthy", label: str = "") -> Manifest:
    """A sidecar-less reviews instance (the caller's Envoy does all the subset work)."""
    return workload(
        f"reviews-{version}",
        "reviews",
        HOSTS[version],
        port,
        port,
        sidecar=False,
        health=health,
        labels={"version": label or version},
    )


def gateway(port: int) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {"address": "127.0.0.1", "port": port},
    }


def ingress(*subset_rules: dict[str, Any]) -> Manifest:
    """Gateway edge's Route: ``subset_rules`` first, then everything else to reviews."""
    rules = [*subset_rules, {"destinations": [{"service": "reviews"}]}]
    return {
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": {"name": "edge"},
        "spec": {"gateways": ["edge"], "rules": rules},
    }


def routes() -> list[Manifest]:
    east_west = {
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": {"name": "reviews"},
        "spec": {
            "service": "reviews",
            "rules": [
                {
                    "matches": [{"headers": [{"name": "x-version", "exact": "v3"}]}],
                    "destinations": [{"service": "reviews", "subset": {"version": "v3"}}],
                },
                {
                    "matches": [{"headers": [{"name": "x-canary", "exact": "1"}]}],
                    "destinations": [{"service": "reviews", "subset": {"version": "v2"}}],
                },
            ],
        },
    }
    v3 = {
        "matches": [{"path": {"regex": "/v3(/.*)?"}}],  # a regex: no deprecated field
        "destinations": [{"service": "reviews", "subset": {"version": "v3"}}],
    }
    return [east_west, ingress(v3)]


def _headers(headers: dict[str, str]) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in headers.items()}


async def get(client: httpx.AsyncClient, url: str, **headers: str) -> httpx.Response | None:
    try:
        return await client.get(url, headers=_headers(headers))
    except httpx.TransportError:
        return None


async def backends_reached(
    client: httpx.AsyncClient, url: str, n: int = 40, **headers: str
) -> Counter[str]:
    """Which backends answer ``n`` requests (``status NNN`` for Envoy's own answers)."""
    seen: Counter[str] = Counter()
    for _ in range(n):
        r = await client.get(url, headers=_headers(headers))
        seen[r.headers.get("x-backend", f"status {r.status_code}")] += 1
    return seen


def gateway_envoy(app: ControlPlaneApp) -> EnvoyProcess:
    """Gateway ``edge`` over delta ADS, its stdout access log flushed every 100 ms."""
    proxy = ProxyIdentity("gateway", "default", "edge")
    bootstrap = ads_bootstrap(proxy, app.xds_addr, ("127.0.0.1", free_port()), delta=True)
    flush = ["--file-flush-interval-msec", "100"]
    return EnvoyProcess(bootstrap, name=proxy.node_id, extra_args=flush)


def access_log(envoy: EnvoyProcess) -> list[dict[str, Any]]:
    """The gateway's JSON access-log lines (Envoy's stdout goes to its log file)."""
    out = []
    for line in envoy.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


async def test_subset_routes_leave_the_rest_of_the_service_reachable(tmp_path: Path) -> None:
    local = free_port(CLIENT)
    gw_port = free_port()
    async with (
        HttpBackend("reviews-v1", host=HOSTS["v1"]) as v1,
        HttpBackend("reviews-v2", host=HOSTS["v2"]) as v2,
        HttpBackend("reviews-v3", host=HOSTS["v3"]) as v3,
        running_control_plane(tmp_path) as app,
    ):
        ports = {"v1": v1.address[1], "v2": v2.address[1], "v3": v3.address[1]}
        await apply_manifests(
            app,
            [
                service("web"),
                service("reviews", 9080),
                reviews("v1", ports["v1"]),
                reviews("v2", ports["v2"]),
                reviews("v3", ports["v3"], health="unhealthy"),
                workload(
                    "web-1",
                    "web",
                    CLIENT,
                    free_port(CLIENT),
                    1,
                    dependencies=[
                        {"service": "reviews", "localAddress": CLIENT, "localPort": local}
                    ],
                ),
                gateway(gw_port),
                ingress(),
            ],
            wait=False,
        )
        url = f"http://{CLIENT}:{local}/"
        edge = f"http://127.0.0.1:{gw_port}"
        async with (
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "web-1")) as web,
            gateway_envoy(app) as gw,
            httpx.AsyncClient(timeout=5, trust_env=False) as client,
        ):

            async def served(url: str, **headers: str) -> bool:
                r = await get(client, url, **headers)
                return r is not None and "x-backend" in r.headers

            await wait_until(lambda: served(url), timeout=30, what="reviews, no subsets yet")
            await wait_until(lambda: served(edge + "/"), timeout=30, what="the gateway")
            # Now Routes to subsets, once both Envoys ACKed them. Requests keep flowing
            # meanwhile: a new subset cluster is warm before a route names it (no 503 NC).
            applied = asyncio.Event()
            during: Counter[int] = Counter()

            async def meanwhile() -> None:
                for _ in range(2000):  # bounded; the apply takes far fewer round trips
                    if applied.is_set():
                        return
                    r = await client.get(url, headers={"x-canary": "1"})
                    during[r.status_code] += 1

            async with asyncio.TaskGroup() as tg:
                tg.create_task(meanwhile())
                await apply_manifests(app, routes())
                applied.set()
            assert set(during) == {200}, during
            # A subset route works (it did before the fix too).
            assert await backends_reached(client, url, 10, x_canary="1") == {"reviews-v2": 10}

            # (a) No subset: every healthy version answers, east-west and through the gateway.
            assert set(await backends_reached(client, url)) == {"reviews-v1", "reviews-v2"}
            assert set(await backends_reached(client, edge + "/")) == {
                "reviews-v1",
                "reviews-v2",
            }

            # (b) A subset whose only instance is unhealthy: 503 UH, no other version asked.
            before = (v1.requests, v2.requests, v3.requests)
            r = await client.get(url, headers={"x-version": "v3"})
            assert (r.status_code, r.text) == (503, "no healthy upstream")
            r = await client.get(edge + "/v3/x")
            assert (r.status_code, r.text) == (503, "no healthy upstream")
            assert (v1.requests, v2.requests, v3.requests) == before
            await web.wait_for_stat(f"cluster.{V3_CLUSTER}.upstream_cx_none_healthy", 1)
            await gw.wait_for_stat(f"cluster.{V3_CLUSTER}.upstream_cx_none_healthy", 1)
            logged = await wait_until(
                lambda: [e for e in access_log(gw) if e["path"] == "/v3/x"],
                timeout=20,
                what="the access-log line of /v3/x",
            )
            assert isinstance(logged, list)
            assert (logged[0]["status"], logged[0]["response_flags"]) == (503, "UH")
            assert logged[0]["upstream_cluster"] == V3_CLUSTER

            # Endpoint changes reach the subset clusters: v3 turns healthy...
            await apply_manifests(app, [reviews("v3", ports["v3"])])
            await wait_until(lambda: served(url, x_version="v3"), timeout=30, what="v3 healthy")
            assert await backends_reached(client, url, 10, x_version="v3") == {"reviews-v3": 10}
            assert await backends_reached(client, edge + "/v3", 10) == {"reviews-v3": 10}
            assert set(await backends_reached(client, url, 60)) == {
                "reviews-v1",
                "reviews-v2",
                "reviews-v3",
            }

            # ... then its label moves it from subset v3 to subset v2.
            await apply_manifests(app, [reviews("v3", ports["v3"], label="v2")])

            async def v3_empty() -> bool:
                r = await get(client, url, x_version="v3")
                return r is not None and r.status_code == 503

            await wait_until(v3_empty, timeout=30, what="subset v3 empty")
            assert set(await backends_reached(client, url, 40, x_canary="1")) == {
                "reviews-v2",
                "reviews-v3",
            }
            assert app.plane.publisher.incremental_rounds > 0  # the endpoint-only publish path
            for envoy in (web, gw):  # Envoy saw no deprecated field (RegexMatcher.google_re2)
                stats = await envoy.stats("deprecated_feature")
                assert stats["runtime.deprecated_feature_use"] == 0, envoy.name
