"""The agent's denial queue: bounded, never waits, keeps records while the control plane is
down, drops (counted) what it cannot hold or what the control plane refuses."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from gossamer.agent.denial_shipper import DenialShipper
from gossamer.errors import RejectedError, UnreachableError
from gossamer.polling import Backoff, wait_until

FAST = Backoff(initial=0.01, maximum=0.02)


class FakeApi:
    """Answers with ``failures`` first (an exception each), then records what it got."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.got: list[list[dict[str, Any]]] = []

    async def report_decisions(self, decisions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if self.failures:
            raise self.failures.pop(0)
        self.got.append([dict(d) for d in decisions])
        return {"recorded": len(decisions)}


def _r(i: int) -> dict[str, Any]:
    return {"request_id": f"r{i}"}


def test_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    shipper = DenialShipper(capacity=3)
    for i in range(5):
        shipper.add(_r(i))
    assert shipper.counts() == {
        "queued": 3, "sent": 0, "dropped": 2, "refused": 0, "error": None,
    }  # fmt: skip


@pytest.mark.asyncio
async def test_records_wait_out_an_unreachable_control_plane_in_order() -> None:
    api = FakeApi(UnreachableError("down"), UnreachableError("down"))
    seen: list[dict[str, Any]] = []
    shipper = DenialShipper(seen.append, batch=2, retry=FAST)
    for i in range(3):
        shipper.add(_r(i))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(shipper.run(api))
        await wait_until(lambda: shipper.sent == 3, timeout=5, what="sent")
        task.cancel()
    assert [r["request_id"] for batch in api.got for r in batch] == ["r0", "r1", "r2"]
    assert api.got[0] == [_r(0), _r(1)]
    assert shipper.counts()["error"] is None and shipper.dropped == 0
    assert any(c["error"] and "down" in c["error"] for c in seen)


@pytest.mark.asyncio
async def test_a_refused_batch_is_dropped_and_counted_and_the_next_goes_out() -> None:
    api = FakeApi(RejectedError(403, "forbidden", ["not yours"]))
    shipper = DenialShipper(batch=1, retry=FAST)
    shipper.add(_r(0))
    shipper.add(_r(1))
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(shipper.run(api))
        await wait_until(lambda: shipper.sent == 1, timeout=5, what="sent")
        task.cancel()
    assert api.got == [[_r(1)]]
    assert shipper.refused == 1


@pytest.mark.asyncio
async def test_while_the_control_plane_is_down_the_queue_stays_bounded() -> None:
    api = FakeApi(*[UnreachableError("down")] * 1000)
    shipper = DenialShipper(capacity=10, batch=4, retry=FAST)
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(shipper.run(api))
        for i in range(100):
            shipper.add(_r(i))  # never waits
            await asyncio.sleep(0)
        await wait_until(lambda: shipper.counts()["error"] is not None, timeout=5)
        task.cancel()
    assert shipper.counts()["queued"] <= 10
    assert shipper.counts()["queued"] + shipper.dropped == 100
