"""A local rate limit through a real caller sidecar: 429 past the budget, and a later change
to the Route's rules (another rule added, the limited rule's headers changed) neither
modifies (drains) a listener nor refills the bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from route_rules_mesh import rules_mesh

from gossamer.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

BUDGET = 5


def limited(extra_headers: dict[str, str] | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "name": "limited",
        "matches": [{"path": {"prefix": "/limited"}}],
        "destinations": [{"service": "reviews"}],
        "rateLimit": {"requests": BUDGET, "per": "1h"},  # no refill during the test
    }
    if extra_headers:
        rule["headers"] = {"response": {"set": extra_headers}}
    return rule


LISTENER_STATS = (
    r"^listener_manager\.(listener_modified|listener_in_place_updated|listener_removed)$"
)


async def test_local_rate_limit_answers_429_and_survives_rule_changes(tmp_path: Path) -> None:
    async with rules_mesh(tmp_path, [limited()]) as mesh, httpx.AsyncClient(timeout=10) as c:
        statuses = [(await c.get(mesh.url + f"/limited/{i}")).status_code for i in range(8)]
        assert statuses == [200] * BUDGET + [429] * 3
        r = await c.get(mesh.url + "/limited/again")
        assert r.status_code == 429
        assert r.headers["x-ratelimit-limit"] == str(BUDGET)
        assert r.headers["x-ratelimit-remaining"] == "0"
        # Other paths are not limited.
        assert all([(await c.get(mesh.url + "/free")).status_code == 200 for _ in range(10)])
        assert mesh.reviews.requests_by_path.total() >= BUDGET

        listeners = await mesh.caller.stats(LISTENER_STATS)
        assert listeners.get("listener_manager.listener_modified") == 0, listeners
        changed = [
            limited({"x-version": "2"}),
            {
                "matches": [{"path": {"exact": "/probe"}}],
                "directResponse": {"status": 200, "body": "v2"},
            },
        ]
        await mesh.apply_rules(changed)

        async def probe_is_v2() -> bool:
            return (await c.get(mesh.url + "/probe")).text == "v2"

        await wait_until(probe_is_v2, timeout=20, what="the caller to route /probe")
        # The same bucket, still empty: the route push did not refill it.
        r = await c.get(mesh.url + "/limited/after-change")
        assert r.status_code == 429, "the rule change refilled the rate-limit bucket"
        assert await mesh.caller.stats(LISTENER_STATS) == listeners, "a listener changed"
        sent = sum(n for path, n in mesh.reviews.requests_by_path.items() if "/limited" in path)
        assert sent == BUDGET
