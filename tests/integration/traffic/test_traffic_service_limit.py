"""``TrafficPolicy.rateLimit`` with ``scope: service`` through two real sidecars: requests
spread over both replicas get about ``requests`` through in all (each sidecar's bucket is
divided by the local cluster's 2 members), where the default ``scope: instance`` lets
through twice that (a bucket each); with one replica unhealthy the other has it all."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from traffic_mesh import traffic_policy

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.testing import HttpBackend, apply_manifests, free_port, mesh_envoy
from gossamer.testing.controlplane import running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

HOSTS = ("127.0.0.3", "127.0.0.4")
#: the figure, per minute: a window long enough that refill adds little during the test
REQUESTS = 20
PER_S = 60.0
#: requests sent to each replica: more than a replica's own bucket, so both limits show
EACH = 30
MEMBERS = "cluster.local|default/reviews.membership_total"


async def _members(envoy: EnvoyProcess) -> int | None:
    return (await envoy.stats(re.escape(MEMBERS))).get(MEMBERS)


async def test_scope_service_is_one_figure_across_the_replicas(tmp_path: Path) -> None:
    ports = [free_port(h) for h in HOSTS]
    async with AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(HttpBackend(f"reviews-{i}", host=h))
            for i, h in enumerate(HOSTS)
        ]
        cp = await stack.enter_async_context(running_control_plane(tmp_path))
        replicas = [
            workload(f"reviews-{i}", "reviews", h, ports[i], apps[i].address[1])
            for i, h in enumerate(HOSTS)
        ]
        await apply_manifests(cp, [service("reviews", 9080), *replicas], wait=False)
        envoys = [
            await stack.enter_async_context(
                mesh_envoy(cp, ProxyIdentity("sidecar", "default", f"reviews-{i}", "reviews"))
            )
            for i in range(len(HOSTS))
        ]
        client = await stack.enter_async_context(httpx.AsyncClient(timeout=5, trust_env=False))
        urls = [f"http://{h}:{p}/" for h, p in zip(HOSTS, ports, strict=True)]

        async def served() -> bool:
            try:
                return all([(await client.get(u)).status_code == 200 for u in urls])
            except httpx.TransportError:
                return False

        await wait_until(served, timeout=30, what="both reviews sidecars")

        async def spread(scope: str, members: int) -> tuple[Counter[int], float]:
            """Apply the limit with ``scope``, wait until both sidecars count ``members``
            in their local cluster, then send EACH requests to each replica, alternating;
            the statuses and the seconds from the apply to the last answer."""
            began = time.monotonic()
            limit = {"requests": REQUESTS, "per": "1m", "scope": scope}
            await apply_manifests(cp, [traffic_policy(rateLimit=limit)])
            for envoy in envoys:
                await wait_until(
                    lambda e=envoy: _counts(e, members), timeout=30, what=f"{members} members"
                )
            statuses: Counter[int] = Counter()
            async with httpx.AsyncClient(timeout=5, trust_env=False) as fresh:
                for _ in range(EACH):
                    for u in urls:
                        statuses[(await fresh.get(u)).status_code] += 1
            return statuses, time.monotonic() - began

        async def _counts(envoy: EnvoyProcess, n: int) -> bool:
            return await _members(envoy) == n

        shared, took = await spread("service", 2)
        # Each sidecar's bucket holds REQUESTS tokens and a request costs 2 (1 / share): 10
        # each, REQUESTS in all. Envoy refills continuously (REQUESTS per minute per bucket,
        # at 2 tokens a request): at most REQUESTS * took / 60 more in all, plus one per
        # sidecar for rounding. Without the share it would be 2 * REQUESTS.
        slack = math.ceil(REQUESTS * took / PER_S) + len(HOSTS)
        assert set(shared) <= {200, 429}, shared
        assert REQUESTS <= shared[200] <= REQUESTS + slack, (shared, took)
        assert shared[429] == 2 * EACH - shared[200]

        # The default scope: a bucket of REQUESTS at each sidecar, 2 * REQUESTS in all (the
        # buckets start full again: the filter config changed). The local set empties.
        apart, took = await spread("instance", 0)
        slack = len(HOSTS) * (math.ceil(REQUESTS * took / PER_S) + 1)
        assert 2 * REQUESTS <= apart[200] <= 2 * REQUESTS + slack, (apart, took)
        assert apart[429] == 2 * EACH - apart[200]

        # Only healthy instances share: with reviews-1 unhealthy, reviews-0 has it all.
        began = time.monotonic()
        sick = workload("reviews-1", "reviews", HOSTS[1], ports[1], apps[1].address[1])
        sick["spec"]["health"] = "unhealthy"
        limit = {"requests": REQUESTS, "per": "1m", "scope": "service"}
        await apply_manifests(cp, [sick, traffic_policy(rateLimit=limit)])
        await wait_until(lambda: _counts(envoys[0], 1), timeout=30, what="1 member")
        async with httpx.AsyncClient(timeout=5, trust_env=False) as fresh:
            alone = Counter([(await fresh.get(urls[0])).status_code for _ in range(EACH)])
        slack = math.ceil(REQUESTS * (time.monotonic() - began) / PER_S) + 1
        assert REQUESTS <= alone[200] <= REQUESTS + slack, alone
