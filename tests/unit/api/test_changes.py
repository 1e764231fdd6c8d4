"""``Changes``: a long poll's news; a stop answers pollers at once and wakes a watcher
inside the server once, never in a loop (no I/O)."""

from __future__ import annotations

import asyncio

import pytest

from gossamer.api.changes import Changes

pytestmark = pytest.mark.asyncio


async def test_a_change_wakes_the_waiters_and_the_next_ones_wait_again() -> None:
    changes = Changes()
    waiter = asyncio.create_task(changes.next(60))
    await asyncio.sleep(0)
    assert not waiter.done()
    changes.changed()
    await asyncio.wait_for(waiter, 1)
    later = asyncio.create_task(changes.next(0.01))
    await asyncio.wait_for(later, 1)  # (its wait ran out: no change meanwhile)


async def test_a_release_answers_pollers_now_and_from_now_on() -> None:
    changes = Changes()
    waiting = asyncio.create_task(changes.next(60))
    await asyncio.sleep(0)
    changes.release()
    await asyncio.wait_for(waiting, 1)
    await asyncio.wait_for(changes.next(60), 1)  # a poll after the release: at once


async def test_a_watcher_inside_the_server_wakes_once_then_waits_for_changes() -> None:
    changes = Changes()
    watcher = asyncio.create_task(changes.next(60, poller=False))
    await asyncio.sleep(0)
    changes.release()
    await asyncio.wait_for(watcher, 1)
    again = asyncio.create_task(changes.next(60, poller=False))
    await asyncio.sleep(0.05)
    assert not again.done()  # no spin: it waits for a real change
    changes.changed()
    await asyncio.wait_for(again, 1)
