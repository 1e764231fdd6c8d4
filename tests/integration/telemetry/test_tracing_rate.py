"""``Mesh.spec.tracing.sampling`` is the share of requests a real Envoy traces, not just a
number in the route table: at 10 %, a gateway starts a trace for about 20 of 200 requests.

(Envoy draws a route's sampling decision from the request id modulo 10 000 and compares it
with the route's ``FractionalPercent`` modulo its denominator: a rate sent per million made
every request of 1 % and above traced, and 0.5 % traced half of them.)"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

A = "127.0.0.43"
SAMPLED = r"^http\.gateway.*\.tracing\.random_sampling$"
REQUESTS = 200


async def test_a_ten_percent_rate_traces_about_a_tenth_of_the_requests(tmp_path: Path) -> None:
    gw_port = free_port("127.0.0.1")
    async with (
        HttpBackend("a", host=A) as a_app,
        running_control_plane(tmp_path, telemetry=TelemetrySettings("auto")) as app,
    ):
        await apply_manifests(app, [
            {"apiVersion": API_VERSION, "kind": "Mesh", "metadata": {"name": "default"},
             "spec": {"tracing": {"sampling": 10}}},
            service("a"),
            workload("a-1", "a", A, free_port(A), a_app.address[1]),
            {"apiVersion": API_VERSION, "kind": "Gateway", "metadata": {"name": "edge"},
             "spec": {"address": "127.0.0.1", "port": gw_port}},
            {"apiVersion": API_VERSION, "kind": "Route", "metadata": {"name": "edge"},
             "spec": {"gateways": ["edge"], "rules": [{"destinations": [{"service": "a"}]}]}},
        ], wait=False)  # fmt: skip
        gw = mesh_envoy(app, ProxyIdentity("gateway", "default", "edge"))
        a = mesh_envoy(app, ProxyIdentity("sidecar", "default", "a-1"))
        url = f"http://127.0.0.1:{gw_port}/ok"
        async with gw, a, httpx.AsyncClient(timeout=10) as c:

            async def answers() -> bool:
                try:
                    return (await c.get(url)).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(answers, timeout=60, what="gateway -> a to answer")
            before = sum((await gw.stats(SAMPLED)).values())
            for _ in range(REQUESTS):
                assert (await c.get(url)).status_code == 200
            sampled = sum((await gw.stats(SAMPLED)).values()) - before
    # binomial(200, 0.1): 20 expected, outside 3..50 with a probability below 1e-9
    assert 3 <= sampled <= 50, f"{sampled} of {REQUESTS} requests traced at 10 %"
