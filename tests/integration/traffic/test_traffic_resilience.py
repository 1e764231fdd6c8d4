"""TrafficPolicy resilience through a real caller Envoy, as its client sees it: retries and
outlier detection hide a flaky instance, the retry budget bounds retries under a full
outage, outlier detection ejects a failing instance, and the circuit breaker answers 503
(overflow) at once instead of queueing."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from traffic_mesh import CLUSTER, ScriptedBackend, caller, traffic_policy

from gossamer.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

OUTLIER = {"consecutive5xx": 3, "interval": "1s", "baseEjectionTime": "60s"}


async def test_a_flaky_instance_causes_no_client_visible_failure(tmp_path: Path) -> None:
    # 3 of every 10 requests to one of two instances fail (30 %).
    flaky = ScriptedBackend("flaky", "127.0.0.3", fails=lambda n: n % 10 in (1, 4, 7))
    good = ScriptedBackend("good", "127.0.0.4")
    policy = traffic_policy(outlierDetection={**OUTLIER, "maxEjectionPercent": 50})
    async with flaky, good, caller(tmp_path, [flaky, good], policy) as mesh:
        statuses: Counter[int] = Counter()

        async def client() -> None:
            for _ in range(500):  # 2 clients x 500 = 1000 requests
                statuses[(await mesh.get()).status_code] += 1

        # Two at a time: at most 2 retries are ever in flight, within the default retry
        # budget's floor of 3 (more clients may see a retry refused by the budget).
        async with asyncio.TaskGroup() as tg:
            for _ in range(2):
                tg.create_task(client())
        assert statuses == {200: 1000}
        assert flaky.failed >= 20, "the flaky instance failed, and retries hid it"


RETRY_STATS = ("upstream_rq_retry", "upstream_rq_total", "upstream_rq_retry_overflow")


@pytest.mark.parametrize(
    ("budget", "percent"),
    [(None, 20.0), ({"percent": 5, "minConcurrency": 1}, 5.0)],
    ids=["default-budget", "policy-budget"],
)
async def test_the_retry_budget_bounds_retries_when_everything_fails(
    tmp_path: Path, budget: dict[str, float] | None, percent: float
) -> None:
    # Both instances fail every request, after 100 ms; the mesh's default retries (2 per
    # request) would triple the load (measured without a budget: 67 % of attempts are
    # retries). Without a TrafficPolicy the default budget (20 %, at least 3) holds.
    # Envoy's budget caps concurrent retries as a share of the requests in flight; the
    # share of retries among attempts follows it when requests spend their time at the
    # backend: failing after 20 ms, a loaded 2-core machine's own latency (and Envoy's
    # 25 ms retry back-off) took it to 22-25 % (9 % for 5 %); after 100 ms it is 18 % (7 %).
    down = [
        ScriptedBackend(f"down-{i}", f"127.0.0.{3 + i}", fails=lambda n: True, delay=0.1)
        for i in range(2)
    ]
    policy = traffic_policy(retryBudget=budget) if budget else None
    async with down[0], down[1], caller(tmp_path, down, policy) as mesh:
        statuses: Counter[int] = Counter()
        stop = asyncio.Event()

        async def client() -> None:
            while not stop.is_set():
                statuses[(await mesh.get()).status_code] += 1

        async def answered(n: int) -> bool:
            return statuses.total() >= n

        async def attempts_since(before: list[int]) -> bool:
            return await mesh.stat("upstream_rq_total") - before[1] >= 1000

        # The budget is a share of the requests in flight: it is measured while all 50
        # clients are (from their 50th answer, over 1000 attempts), not while they ramp up
        # or while the last ones finish, when the floor of minConcurrency retries is most of it.
        async with asyncio.TaskGroup() as tg:
            for _ in range(50):
                tg.create_task(client())
            await wait_until(lambda: answered(50), timeout=60, what="50 answers")
            before = [await mesh.stat(name) for name in RETRY_STATS]
            await wait_until(
                lambda: attempts_since(before), timeout=120, interval=0.1, what="1000 attempts"
            )
            after = [await mesh.stat(name) for name in RETRY_STATS]
            stop.set()
        retries, total, overflow = (a - b for a, b in zip(after, before, strict=True))
        assert set(statuses) == {503}, statuses
        assert total >= 1000 and retries / total <= (percent + 5) / 100, (retries, total)
        assert overflow > 0, (retries, total, overflow)


async def test_outlier_detection_ejects_a_failing_instance(tmp_path: Path) -> None:
    bad = ScriptedBackend("bad", "127.0.0.3", fails=lambda n: True)
    good = ScriptedBackend("good", "127.0.0.4")
    policy = traffic_policy(outlierDetection={**OUTLIER, "maxEjectionPercent": 50})
    async with bad, good, caller(tmp_path, [bad, good], policy) as mesh:
        for _ in range(200):  # bounded: three 503s in a row from bad eject it
            assert (await mesh.get()).status_code == 200  # retries hide bad meanwhile
            if await mesh.stat("outlier_detection.ejections_enforced_consecutive_5xx"):
                break
        assert await mesh.stat("outlier_detection.ejections_active") == 1
        before = bad.served
        assert await mesh.reached(50) == {"good": 50}
        assert bad.served == before, "an ejected instance gets no requests"


async def test_the_circuit_breaker_answers_overflow_instead_of_queueing(tmp_path: Path) -> None:
    gate = asyncio.Event()  # the backend holds every request until the test sets it
    held = ScriptedBackend("held", "127.0.0.3", gate=gate)
    policy = traffic_policy(circuitBreaker={"maxRequests": 2, "maxPendingRequests": 1})
    async with held, caller(tmp_path, [held], policy) as mesh:

        async def refused_at_once() -> httpx.Response:
            # answered while the backend still holds the first two: not queued behind them
            async with asyncio.timeout(10):
                r = await mesh.get()
            assert r.status_code == 503, r
            assert r.headers.get("x-envoy-overloaded") == "true"
            assert "x-backend" not in r.headers
            return r

        async def in_flight(n: int) -> bool:
            return held.holding == n and await mesh.stat("upstream_rq_active") == n

        async with asyncio.TaskGroup() as tg:
            first = [tg.create_task(mesh.get()) for _ in range(2)]
            await wait_until(lambda: in_flight(2), timeout=30, what="2 requests held")
            # one at a time: each finds maxRequests in flight (response flag UO; Envoy
            # marks the answer x-envoy-overloaded)
            for _ in range(5):
                await refused_at_once()
            assert await mesh.stat("upstream_rq_active_overflow") == 5
            # at once: each is refused by maxRequests, or by the pending queue's limit of 1
            # while the pool opens a connection for the one it queued
            await asyncio.gather(*(refused_at_once() for _ in range(10)))
            overflows = await mesh.stat("upstream_rq_active_overflow")
            overflows += await mesh.stat("upstream_rq_pending_overflow")
            assert overflows == 15
            assert held.served == 2, "no refused request reached the backend"
            gate.set()
        assert [t.result().status_code for t in first] == [200, 200]
        assert (await mesh.get()).status_code == 200  # closed again once they ended
        assert CLUSTER in await mesh.envoy.admin_get("/clusters")
