"""``TrafficPolicy.rateLimit`` at the service's own sidecar, through a real Envoy: over the
budget its clients get 429 with ``x-ratelimit-*`` headers, and changing another field of
the policy neither refills the bucket nor drains the listener."""

from __future__ import annotations

from collections import Counter
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

HOST = "127.0.0.3"


async def test_the_rate_limit_holds_at_the_services_sidecar(tmp_path: Path) -> None:
    inbound = free_port(HOST)
    limit = {"requests": 5, "per": "1h"}
    async with (
        HttpBackend("reviews-1", host=HOST) as app_backend,
        running_control_plane(tmp_path) as cp,
    ):
        reviews = workload("reviews-1", "reviews", HOST, inbound, app_backend.address[1])
        await apply_manifests(cp, [service("reviews", 9080), reviews], wait=False)
        url = f"http://{HOST}:{inbound}/"
        async with (
            mesh_envoy(cp, ProxyIdentity("sidecar", "default", "reviews-1")) as envoy,
            httpx.AsyncClient(timeout=5, trust_env=False) as client,
        ):

            async def served() -> bool:
                try:
                    return (await client.get(url)).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(served, timeout=30, what="the reviews sidecar")
            await apply_manifests(cp, [traffic_policy(rateLimit=limit)])
            # A first budget is a new descriptor of the inbound listener's filter: the
            # listener is replaced, and a new connection reaches the new one.
            async with httpx.AsyncClient(timeout=5, trust_env=False) as fresh:
                before = app_backend.requests
                answers = [await fresh.get(url) for _ in range(8)]
                assert [r.status_code for r in answers] == [200] * 5 + [429] * 3
                assert answers[-1].headers["x-ratelimit-limit"] == "5"
                assert answers[-1].headers["x-ratelimit-remaining"] == "0"
                assert app_backend.requests == before + 5, "refused requests never reach the app"
                # Changing another field of the policy leaves the bucket and the listener.
                modified = await _listeners_modified(envoy)
                changed = traffic_policy(rateLimit=limit, loadBalancer={"algorithm": "random"})
                await apply_manifests(cp, [changed])
                statuses = Counter([(await fresh.get(url)).status_code for _ in range(5)])
                assert statuses == {429: 5}
                after = await _listeners_modified(envoy)
            assert after == modified, "no listener drained"


async def _listeners_modified(envoy: EnvoyProcess) -> int:
    name = "listener_manager.listener_modified"
    return (await envoy.stats(name))[name]
