"""``StoreHealth``: whether the store answers and since when, with the messages ``/readyz``
and refused writes give (no I/O: the probe's verdicts are given)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from gossamer.errors import StoreError
from gossamer.store.etcd_health import StoreHealth

WHERE = "etcd at etcd://127.0.0.1:2379/gossamer"


def test_a_store_that_answers_has_no_problem() -> None:
    health = StoreHealth(WHERE)
    assert not health.lost
    assert health.problem() is None
    health.check()  # no error
    assert health.lost_for(100.0) == 0.0
    assert not health.mark_ok()  # answering already: no change


def test_a_lost_store_refuses_and_says_where_and_since_when() -> None:
    health = StoreHealth(WHERE)
    wall = datetime(2026, 12, 2, 21, 5, 7, tzinfo=timezone(timedelta(hours=2)))
    assert health.mark_lost(50.0, wall)
    assert not health.mark_lost(51.0, wall + timedelta(seconds=1))  # still the same loss
    assert health.lost and health.losses == 1
    assert health.lost_since == datetime(2026, 12, 2, 19, 5, 7, tzinfo=UTC)
    assert health.lost_for(57.5) == 7.5
    problem = health.problem()
    assert problem is not None
    assert WHERE in problem and "unreachable since 2026-12-02T19:05:07Z" in problem
    with pytest.raises(StoreError, match="nothing was changed") as refused:
        health.check()
    assert WHERE in str(refused.value) and "another control-plane replica" in str(refused.value)


def test_a_store_back_answers_again_and_a_new_loss_counts_anew() -> None:
    health = StoreHealth(WHERE)
    health.mark_lost(1.0, datetime.now(UTC))
    assert health.mark_ok()
    assert not health.lost and health.problem() is None and health.lost_for(9.0) == 0.0
    health.check()
    assert health.mark_lost(20.0, datetime.now(UTC))
    assert health.losses == 2 and health.lost_for(21.0) == 1.0
