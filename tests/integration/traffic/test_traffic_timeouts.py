"""A Route's timeouts through a real caller Envoy, as its client sees it: a hung instance of
a mesh service is cut off by the rule's ``timeout`` (504, Envoy's ``UT``), and with
``retries.perTryTimeout`` a request stuck on a hung instance is tried again on a healthy one
within the overall timeout, so the client sees only answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from traffic_mesh import ScriptedBackend, caller

from gossamer.testing.mesh import route

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(180)]


def reviews_route(**rule: Any) -> dict[str, Any]:
    return route("reviews", "reviews", [{"destinations": [{"service": "reviews"}], **rule}])


async def test_a_hung_instance_is_cut_off_by_the_rule_timeout(tmp_path: Path) -> None:
    gate = asyncio.Event()  # never set while the test asks: the instance hangs
    hung = ScriptedBackend("hung", "127.0.0.3", gate=gate)
    rule = reviews_route(timeout="500ms", retries={"attempts": 0, "retryOn": []})
    async with hung, caller(tmp_path, [hung], rule) as mesh:
        try:
            for _ in range(3):
                start = time.monotonic()
                answer = await mesh.get()
                took = time.monotonic() - start
                assert answer.status_code == 504, answer
                assert "x-backend" not in answer.headers
                # cut off at the timeout, not at the client's 20 s nor never
                assert 0.45 <= took < 5.0, took
            assert await mesh.stat("upstream_rq_timeout") == 3
            assert hung.served == 3, "each request reached the instance once (no retry)"
        finally:
            gate.set()


async def test_a_per_try_timeout_moves_a_stuck_request_to_a_healthy_instance(
    tmp_path: Path,
) -> None:
    gate = asyncio.Event()
    hung = ScriptedBackend("hung", "127.0.0.3", gate=gate)
    good = ScriptedBackend("good", "127.0.0.4")
    rule = reviews_route(
        timeout="10s",
        retries={"attempts": 3, "perTryTimeout": "300ms", "retryOn": ["gateway-error"]},
    )
    async with hung, good, caller(tmp_path, [hung, good], rule) as mesh:
        try:
            slowest = 0.0
            for _ in range(20):
                start = time.monotonic()
                answer = await mesh.get()
                slowest = max(slowest, time.monotonic() - start)
                assert answer.status_code == 200, answer
                assert answer.headers["x-backend"] == "good"
            assert hung.holding > 0, "no request was sent to the hung instance: nothing shown"
            # a request that met the hung instance waited one per-try timeout, then moved
            assert slowest < 5.0, slowest
            assert await mesh.stat("upstream_rq_per_try_timeout") == hung.served
            assert await mesh.stat("upstream_rq_retry") >= hung.served
        finally:
            gate.set()
