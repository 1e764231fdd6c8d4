"""Global rate limits through real Envoys and real ``gossamer ratelimit serve`` processes:
429 with x-ratelimit-* headers past the limit, per key; two caller sidecars, or two
gateways, each asking its own service, the two services sharing one Redis, hold the
combined rate within ±10 %; with Redis stopped the service answers by its failure mode;
with the service unreachable Envoy does (``failure_mode_deny`` from the Mesh)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from limits_mesh import (
    RateSeen,
    caller_envoy,
    gateway_snapshot,
    limited_rule,
    ratelimit_serve,
    rules_file,
    saturate,
    snapshot,
    statuses,
)

from gossamer.testing.backends import HttpBackend
from gossamer.testing.ports import free_port
from gossamer.testing.redis import running_redis
from gossamer.translate.global_rate_limit import RateLimitService

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WEB1, WEB2 = "127.0.0.2", "127.0.0.5"
EDGE1, EDGE2 = "127.0.0.6", "127.0.0.7"
REVIEWS = "127.0.0.3"
LIMIT = 10  # per second, for both proxies together
#: the combined-rate tests wait for answers (Envoy for the service, the service for Redis)
#: and refuse when there is none: a loaded machine cannot let more than the limit through
#: by failing open, so passing more would be counting apart
PATIENT = {"failure_mode": "closed", "timeout": "5s"}


async def test_over_the_limit_is_429_with_headers_per_key(tmp_path: Path) -> None:
    rules = rules_file(tmp_path / "rules.json", 3, "hour", "header")
    local = free_port(WEB1)
    async with (
        HttpBackend("reviews", host=REVIEWS) as reviews,
        ratelimit_serve(tmp_path, rules) as service,
    ):
        rule = limited_rule(3, "1h", {"header": "x-api-key"})
        snap = snapshot([("web-1", WEB1, local)], reviews.address[1], rule, "closed")
        async with caller_envoy(snap, "web-1", service.address), httpx.AsyncClient() as c:
            url = f"http://{WEB1}:{local}/api"
            k1 = {"x-api-key": "k1"}
            assert await statuses(c, url, 5, headers=k1) == [200, 200, 200, 429, 429]
            r = await c.get(url, headers=k1)
            assert r.status_code == 429
            assert r.headers["x-ratelimit-limit"].split(",")[0] == "3"
            assert r.headers["x-ratelimit-remaining"] == "0"
            assert 0 < int(r.headers["x-ratelimit-reset"]) <= 3600
            ok = await c.get(url, headers={"x-api-key": "k2"})  # another key, its own budget
            assert ok.status_code == 200 and ok.headers["x-ratelimit-remaining"] == "2"
            # no key: one shared budget of its own
            assert await statuses(c, url, 4) == [200, 200, 200, 429]
            assert reviews.requests == 3 + 1 + 3


def assert_combined_rate(seen: RateSeen) -> None:
    """Each whole window was asked past twice the limit and let ``LIMIT`` ± 10 % pass."""
    assert set(seen.statuses) <= {200, 429}, seen.statuses  # no failure of the service
    assert all(seen.sent[w] > 2 * LIMIT for w in seen.windows), seen.sent  # saturated
    for w in seen.windows:
        assert seen.certain[w] <= 1.1 * LIMIT, (w, seen)
        assert seen.possible[w] >= 0.9 * LIMIT, (w, seen)


async def test_two_sidecars_two_services_one_redis_hold_the_combined_rate(
    tmp_path: Path,
) -> None:
    rules = rules_file(tmp_path / "rules.json", LIMIT, "second")
    local1, local2 = free_port(WEB1), free_port(WEB2)
    async with (
        HttpBackend("reviews", host=REVIEWS) as reviews,
        running_redis(tmp_path / "redis") as redis,
        ratelimit_serve(tmp_path, rules, redis=redis.url, redis_timeout=5) as rl1,
        ratelimit_serve(tmp_path, rules, redis=redis.url, redis_timeout=5) as rl2,
    ):
        callers = [("web-1", WEB1, local1), ("web-2", WEB2, local2)]
        snap = snapshot(callers, reviews.address[1], limited_rule(LIMIT), **PATIENT)
        async with (
            caller_envoy(snap, "web-1", rl1.address),
            caller_envoy(snap, "web-2", rl2.address),
            httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as c,
        ):
            urls = [f"http://{WEB1}:{local1}/a", f"http://{WEB2}:{local2}/b"]
            assert_combined_rate(await saturate(c, urls, seconds=4))
        # both services answered checks
        assert "rules" in rl1.process.log_tail() and "rules" in rl2.process.log_tail()


async def test_two_gateways_two_services_one_redis_hold_the_combined_rate(
    tmp_path: Path,
) -> None:
    # One Route at both gateways: one rule id, one budget, whichever service counts it.
    rules = rules_file(tmp_path / "rules.json", LIMIT, "second")
    port1, port2 = free_port(EDGE1), free_port(EDGE2)
    async with (
        HttpBackend("reviews", host=REVIEWS) as reviews,
        running_redis(tmp_path / "redis") as redis,
        ratelimit_serve(tmp_path, rules, redis=redis.url, redis_timeout=5) as rl1,
        ratelimit_serve(tmp_path, rules, redis=redis.url, redis_timeout=5) as rl2,
    ):
        gateways = [("edge-a", EDGE1, port1), ("edge-b", EDGE2, port2)]
        snap = gateway_snapshot(gateways, reviews.address[1], limited_rule(LIMIT), **PATIENT)
        async with (
            caller_envoy(snap, "edge-a", rl1.address, kind="gateway") as edge_a,
            caller_envoy(snap, "edge-b", rl2.address, kind="gateway") as edge_b,
            httpx.AsyncClient(limits=httpx.Limits(max_connections=32)) as c,
        ):
            urls = [f"http://{EDGE1}:{port1}/a", f"http://{EDGE2}:{port2}/b"]
            seen = await saturate(c, urls, seconds=4)
            assert_combined_rate(seen)
            # each gateway asked its own service, and each was told "over limit" at times
            for edge in (edge_a, edge_b):
                # the filter's answers (``cluster.<route's cluster>.ratelimit.<prefix>.*``)
                counts = await edge.stats(r"\.ratelimit\.global_rate_limit\.(ok|over_limit)$")
                assert len(counts) == 2 and all(counts.values()), counts
        assert reviews.requests == seen.statuses[200], "429s were never forwarded"


@pytest.mark.parametrize(("mode", "expected"), [("open", 200), ("closed", 429)])
async def test_redis_stopped_answers_by_the_failure_mode(
    tmp_path: Path, mode: str, expected: int
) -> None:
    rules = rules_file(tmp_path / "rules.json", 1000, "hour")
    local = free_port(WEB1)
    async with (
        HttpBackend("reviews", host=REVIEWS) as reviews,
        running_redis(tmp_path / "redis") as redis,
        ratelimit_serve(tmp_path, rules, redis=redis.url, failure_mode=mode) as service,
    ):
        snap = snapshot(
            [("web-1", WEB1, local)], reviews.address[1], limited_rule(1000, "1h"), "open"
        )
        async with caller_envoy(snap, "web-1", service.address), httpx.AsyncClient() as c:
            url = f"http://{WEB1}:{local}/x"
            r = await c.get(url)
            assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "999"
            await redis.stop()
            assert await statuses(c, url, 5) == [expected] * 5
            await redis.start()  # same port, empty: counting resumes
            r = await c.get(url)
            assert r.status_code == 200 and r.headers["x-ratelimit-remaining"] == "999"


@pytest.mark.parametrize(("mode", "expected"), [("open", 200), ("closed", 503)])
async def test_an_unreachable_service_is_envoys_failure_mode(
    tmp_path: Path, mode: str, expected: int
) -> None:
    local = free_port(WEB1)
    nobody = RateLimitService("127.0.0.1", free_port())
    async with HttpBackend("reviews", host=REVIEWS) as reviews:
        snap = snapshot([("web-1", WEB1, local)], reviews.address[1], limited_rule(1), mode)
        async with caller_envoy(snap, "web-1", nobody), httpx.AsyncClient() as c:
            assert await statuses(c, f"http://{WEB1}:{local}/x", 3) == [expected] * 3
