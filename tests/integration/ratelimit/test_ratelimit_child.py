"""The control plane's own rate-limit service (``--ratelimit auto``): no child while no
Route has a global limit; the first such rule starts ``gossamer ratelimit serve``, which
reads the rules through ``GET /v1/ratelimit/rules`` with its own read-only token, and a
real caller sidecar answers 429 with x-ratelimit-* past the limit; a changed limit reaches
the service without a restart; a killed child is restarted; removing the rule stops it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest
from limits_mesh import REVIEWS, limited_rule, statuses

from gossamer.polling import wait_until
from gossamer.server.rate_limit import RateLimitSettings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import route, service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WEB1 = "127.0.0.2"
FREE = {"name": "free", "destinations": [{"service": "reviews"}]}


async def test_the_child_serves_the_routes_global_limits(tmp_path: Path) -> None:
    local = free_port(WEB1)
    async with (
        HttpBackend("reviews", host=REVIEWS) as reviews,
        running_control_plane(tmp_path, rate_limit=RateLimitSettings("auto")) as app,
    ):
        deps = [{"service": "reviews", "localAddress": WEB1, "localPort": local}]
        port = reviews.address[1]
        await apply_manifests(
            app,
            [
                service("web"),
                service("reviews", 9080),
                workload("web-1", "web", WEB1, free_port(WEB1), 1, dependencies=deps),
                workload("reviews-1", "reviews", REVIEWS, port, port, sidecar=False),
                route("reviews", "reviews", [FREE]),
            ],
            wait=False,
        )
        child = app.rate_limit_child
        assert child is not None and child.process is None  # nothing needs it yet
        async with mesh_envoy(app, ProxyIdentity("sidecar", "default", "web-1")):
            url = f"http://{WEB1}:{local}/api"
            async with httpx.AsyncClient(timeout=5) as c:

                async def served(expected: int = 200) -> bool:
                    try:
                        return (await c.get(url)).status_code == expected
                    except httpx.TransportError:
                        return False

                await wait_until(served, timeout=30, what="the sidecar to route reviews")
                await apply_manifests(app, [route("reviews", "reviews", [limited_rule(3, "1h")])])
                await wait_until(
                    lambda: served(429), timeout=30, what="the child to count and refuse"
                )
                assert child.process is not None and child.starts == 1
                r = await c.get(url)
                assert r.status_code == 429 and r.headers["x-ratelimit-limit"].startswith("3")
                assert r.headers["x-ratelimit-remaining"] == "0"
                token = (tmp_path / "ratelimit.token").read_text()
                assert oct((tmp_path / "ratelimit.token").stat().st_mode & 0o777) == "0o600"
                assert token.strip() not in " ".join(child.argv())  # never on its command line

                # a higher limit reaches the service (the same counter, not restarted)
                before = reviews.requests
                await apply_manifests(app, [route("reviews", "reviews", [limited_rule(50, "1h")])])
                await wait_until(served, timeout=30, what="the new limit to be served")
                assert child.starts == 1 and reviews.requests > before

                # a killed child comes back (with back-off) and serves again
                os.kill(child.process.pid, signal.SIGKILL)
                await wait_until(
                    lambda: _restarted(child), timeout=30, what="the child to be restarted"
                )
                await wait_until(served, timeout=30, what="the restarted child to answer")

                # no global limit left: the child is stopped
                await apply_manifests(app, [route("reviews", "reviews", [FREE])])
                proc = child.process
                assert proc is not None
                await wait_until(lambda: _stopped(proc), timeout=30, what="the child to be stopped")
                assert await statuses(c, url, 3) == [200, 200, 200]


async def _restarted(child) -> bool:  # type: ignore[no-untyped-def]
    return child.starts >= 2 and child.process is not None and child.process.running


async def _stopped(proc) -> bool:  # type: ignore[no-untyped-def]
    return not proc.running
