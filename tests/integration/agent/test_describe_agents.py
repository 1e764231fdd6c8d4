"""``gossamer describe service`` through real agent-run Envoys (issue 10): a caller (web,
host-a) and a callee (reviews, host-b), a Route aborting 100 % of one path and a
TrafficPolicy with maxRequests. describe shows the rule, the policy, that the caller's
sidecar ACKed them, and the ``FI`` count its Envoy kept; once the caller's agent is gone,
the caller is still listed, with why its counters could not be read."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

from .agents import AgentHandle, agents, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

ABORTED = 20
WEB = "sidecar~default~web-1"


def _workload(name: str, service: str, app: HttpBackend, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": service,
        "appAddress": app.address[0],
        "appPort": app.address[1],
        **extra,
    }


async def _reviews_url(web: AgentHandle) -> str:
    env = await web.env()
    return f"http://{env['REVIEWS_ADDR']}"


async def test_describe_service_shows_rule_policy_acks_and_fault_flags(tmp_path: Path) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("web-app", host="127.0.0.3") as web_app,
        HttpBackend("reviews-app", host="127.0.0.4") as reviews_app,
    ):
        await apply_yaml(
            app,
            f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
""",
            wait=False,
        )
        web = AgentHandle(
            app,
            "host-a",
            "127.0.0.3",
            tmp_path / "a",
            [_workload("web-1", "web", web_app, dependencies=[{"service": "reviews"}])],
        )
        reviews = AgentHandle(
            app,
            "host-b",
            "127.0.0.4",
            tmp_path / "b",
            [_workload("reviews-1", "reviews", reviews_app)],
        )
        server = ("--server", app.api_url)
        async with agents(web, reviews):
            for h in (web, reviews):
                await h.join()
                await h.start()
            await web.wait_running()
            await reviews.wait_running()
            await apply_yaml(
                app,
                """
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: reviews}
spec:
  service: reviews
  rules:
    - name: broken
      matches: [{path: {prefix: /broken}}]
      destinations: [{service: reviews}]
      fault: {abort: {status: 503, percent: 100}}
---
apiVersion: gossamer.dev/v1
kind: TrafficPolicy
metadata: {name: reviews-breaker}
spec: {service: reviews, circuitBreaker: {maxRequests: 50}}
""",
            )
            url = await _reviews_url(web)
            async with httpx.AsyncClient(timeout=5, trust_env=False) as client:

                async def served() -> bool:
                    try:
                        return (await client.get(url + "/ok")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_until(served, timeout=30, what="web reaching reviews through the mesh")
                answers = [(await client.get(f"{url}/broken/{i}")) for i in range(ABORTED)]
            assert [(r.status_code, r.text) for r in answers] == [
                (503, "fault filter abort")
            ] * ABORTED

            code, out = await run_cli("describe", "service", "reviews", "-o", "json", *server)
            assert code == 0, out
            d = json.loads(out)
            (route,) = d["routes"]
            (rule,) = route["rules"]
            assert rule["name"] == "broken"
            assert rule["effects"] == [
                "fault: abort with 503 for 100% of requests",
                "forward to reviews",
            ]
            (policy,) = d["policies"]
            assert "circuitBreaker: maxRequests=50" in policy["settings"]
            (proxy,) = d["proxies"]
            assert (proxy["nodeId"], proxy["state"]) == (WEB, "acked"), proxy
            kinds = {r["type"] for r in proxy["resources"]}
            assert kinds == {"clusters", "endpoints", "listeners", "routes"}, proxy
            assert proxy["host"] == "host-a (online)"
            flags = {f["flag"]: f for f in d["responseFlags"]["flags"]}
            assert flags["FI"]["count"] == ABORTED, d["responseFlags"]
            assert not flags["FI"]["shared"]
            assert d["responseFlags"]["unread"] == []
            (w,) = d["workloads"]
            assert (w["name"], w["health"], w["sidecar"]) == ("reviews-1", "healthy", True)

            # the text view says the same in words
            code, text = await run_cli("describe", "service", "reviews", *server)
            assert code == 0, text
            for expected in (
                "1. broken when path prefix /broken",
                "-> fault: abort with 503 for 100% of requests",
                "default/reviews-breaker (whole service)",
                "circuitBreaker: maxRequests=50",
                "sidecar default/web-1",
                "acked",
                "aborted by fault injection",
            ):
                assert expected in text, (expected, text)
            code, text = await run_cli("describe", "route", "reviews", *server)
            assert code == 0 and "sidecar default/web-1" in text and "acked" in text, text

            # an unknown name: 404 naming what exists
            code, text = await run_cli("describe", "service", "reveiws", *server)
            assert code == 1 and "did you mean reviews?" in text, text

            # the caller's agent is gone (its Envoy keeps serving): still listed, unread
            assert await web.signal(signal.SIGHUP) == 0
            code, out = await run_cli(
                "describe", "service", "reviews", "-o", "json", "--timeout", "1", *server
            )
            assert code == 0, out
            d = json.loads(out)
            assert [p["nodeId"] for p in d["proxies"]] == [WEB]
            (unread,) = d["responseFlags"]["unread"]
            assert unread["nodeId"] == WEB
            assert (
                "did not pick up the stats request within 1 s: its agent is offline"
                in (unread["error"])
            )
