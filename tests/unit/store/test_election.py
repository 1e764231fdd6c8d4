"""``Election``: who leads a role as one replica learned it, and the fence of its writes."""

from __future__ import annotations

import asyncio

import pytest

from gossamer.errors import FencedError, StoreError
from gossamer.store.base import Fence
from gossamer.store.election import Election


def test_the_winner_leads_with_its_key_create_revision_as_token() -> None:
    election = Election("singletons", "cp-a")
    assert not election.leading and election.leader is None
    election.won(41)
    assert election.leading and election.leader == "cp-a"
    assert election.fence() == Fence("singletons", 41)


def test_a_replica_that_does_not_lead_has_no_fence_and_says_who_leads() -> None:
    election = Election("singletons", "cp-a")
    election.saw("cp-b")
    with pytest.raises(FencedError, match=r"\(cp-a\) does not lead 'singletons' \(replica cp-b"):
        election.fence()
    election.saw(None)
    with pytest.raises(FencedError, match="no replica leads it now") as info:
        election.fence()
    assert isinstance(info.value, StoreError)  # refused like any write the store refuses


def test_a_deposed_leader_loses_its_fence_at_once() -> None:
    election = Election("singletons", "cp-a")
    election.won(41)
    election.saw("cp-b")
    assert not election.leading
    with pytest.raises(FencedError):
        election.fence()
    election.won(57)  # leads again: a new key, a new token
    assert election.fence() == Fence("singletons", 57)


@pytest.mark.asyncio
async def test_changed_wakes_on_a_change_of_leading_only() -> None:
    election = Election("singletons", "cp-a")
    waiter = asyncio.create_task(election.changed())
    election.saw("cp-b")  # not leading before, not leading now: no change
    await asyncio.sleep(0)
    assert not waiter.done()
    election.won(3)
    await asyncio.wait_for(waiter, 1)
    again = asyncio.create_task(election.changed())
    election.won(3)  # the same term, seen again
    await asyncio.sleep(0)
    assert not again.done()
    election.saw(None)
    await asyncio.wait_for(again, 1)
