"""Routes change while keep-alive clients run: no request fails."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import route, service, split, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

CLIENT = "127.0.0.2"
CLIENTS = 4
MAX_REQUESTS = 5000  # per client: the loops are bounded in count ...
MAX_SECONDS = 60  # ... and in time


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_route_changes_under_load_fail_nothing(tmp_path: Path, delta: bool) -> None:
    local = free_port(CLIENT)
    async with (
        HttpBackend("reviews-v1", host="127.0.0.3") as v1,
        HttpBackend("reviews-v2", host="127.0.0.4") as v2,
        running_control_plane(tmp_path) as app,
    ):
        await apply_manifests(
            app,
            [
                service("web"),
                service("reviews", 9080),
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
                workload(
                    "reviews-1",
                    "reviews",
                    "127.0.0.3",
                    free_port("127.0.0.3"),
                    v1.address[1],
                    labels={"version": "v1"},
                ),
                workload(
                    "reviews-2",
                    "reviews",
                    "127.0.0.4",
                    free_port("127.0.0.4"),
                    v2.address[1],
                    labels={"version": "v2"},
                ),
                route("reviews", "reviews", split("reviews", {"v1": 100})),
            ],
            wait=False,
        )
        names = ("web-1", "reviews-1", "reviews-2")
        envoys = [
            mesh_envoy(app, ProxyIdentity("sidecar", "default", n), delta=delta) for n in names
        ]
        async with envoys[0], envoys[1], envoys[2]:
            url = f"http://{CLIENT}:{local}/"
            async with httpx.AsyncClient(timeout=5) as probe:

                async def ready() -> bool:
                    try:
                        return (await probe.get(url)).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_until(ready, timeout=30, what="the mesh to serve reviews")

            statuses: Counter[int] = Counter()
            backends: Counter[str] = Counter()
            stop = asyncio.Event()

            async def client() -> None:
                # one keep-alive connection per client
                limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
                async with httpx.AsyncClient(timeout=10, limits=limits) as c:
                    for _ in range(MAX_REQUESTS):
                        if stop.is_set():
                            return
                        r = await c.get(url)
                        statuses[r.status_code] += 1
                        if r.status_code == 200:
                            backends[json.loads(r.text)["backend"]] += 1

            async with asyncio.timeout(MAX_SECONDS), asyncio.TaskGroup() as tg:
                for _ in range(CLIENTS):
                    tg.create_task(client())
                for weights in ({"v1": 50, "v2": 50}, {"v2": 100}, {"v1": 100}, {"v2": 100}):
                    await apply_manifests(
                        app, [route("reviews", "reviews", split("reviews", weights))]
                    )
                    seen = sum(statuses.values())
                    await wait_until(
                        lambda s=seen: sum(statuses.values()) > s + 20,
                        timeout=30,
                        what="requests after the route change",
                    )
                before_v2 = backends["reviews-v2"]
                await wait_until(lambda: sum(statuses.values()) > 50, timeout=30)
                stop.set()
        assert set(statuses) == {200}, f"non-2xx responses during route changes: {statuses}"
        assert backends["reviews-v1"] > 0 and backends["reviews-v2"] >= before_v2 > 0
