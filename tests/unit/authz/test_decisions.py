"""The request-decision trail: found by request id, bounded, newest first, written 0600."""

from __future__ import annotations

import asyncio
import json
import stat
from pathlib import Path

import pytest

from gossamer.authz.decisions import DecisionTrail, RequestDecision
from gossamer.polling import wait_until


def _d(rid: str, *, service: str = "shop/cart", decision: str = "deny") -> RequestDecision:
    return RequestDecision(
        request_id=rid,
        at=1.0,
        source="rbac",
        decision=decision,
        service=service,
        caller="spiffe://mesh.local/ns/shop/sa/web",
        end_user="",
        method="GET",
        path="/items",
        reason="rbac_access_denied_matched_policy[none]",
        reporter="agent-1",
        proxy="cart-1",
    )


def test_find_returns_every_record_of_a_request_id_oldest_first() -> None:
    trail = DecisionTrail(None)
    first, other, second = _d("a"), _d("b"), _d("a", decision="would-deny")
    for d in (first, other, second):
        trail.record(d)
    assert trail.find("a") == [first, second]
    assert trail.find("b") == [other]
    assert trail.find("nobody") == []


def test_the_oldest_beyond_keep_are_forgotten_from_the_index_too() -> None:
    trail = DecisionTrail(None, keep=3)
    for i in range(5):
        trail.record(_d(f"r{i}"))
    assert len(trail) == 3
    assert trail.find("r0") == [] and trail.find("r1") == []
    assert [d.request_id for d in trail.recent()] == ["r4", "r3", "r2"]
    assert trail.recorded == 5


def test_the_same_id_twice_keeps_the_newer_when_the_older_is_forgotten() -> None:
    trail = DecisionTrail(None, keep=2)
    trail.record(_d("x"))
    trail.record(_d("x", decision="would-deny"))
    trail.record(_d("y"))
    assert [d.decision for d in trail.find("x")] == ["would-deny"]


def test_recent_filters_by_service_and_decision_newest_first() -> None:
    trail = DecisionTrail(None)
    trail.record(_d("1", service="shop/cart"))
    trail.record(_d("2", service="shop/pay"))
    trail.record(_d("3", service="shop/cart", decision="would-deny"))
    trail.record(_d("4", service="shop/cart"))
    assert [d.request_id for d in trail.recent(service="shop/cart")] == ["4", "3", "1"]
    assert [d.request_id for d in trail.recent(decision="deny")] == ["4", "2", "1"]
    assert [d.request_id for d in trail.recent(1, service="shop/cart", decision="deny")] == ["4"]


def test_keep_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keep"):
        DecisionTrail(None, keep=0)


@pytest.mark.asyncio
async def test_the_writer_appends_json_lines_to_a_0600_file(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    trail = DecisionTrail(path)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(trail.run())
        trail.record(_d("a"))
        trail.record(_d("b", decision="would-deny"))
        await wait_until(lambda: trail.written == 2, timeout=5, interval=0.01)
        task.cancel()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["request_id"] for line in lines] == ["a", "b"]
    assert lines[1] == _d("b", decision="would-deny").as_dict()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
