"""``OwnWrites``: an apply's write handed over by the watch only when nothing was stored
between, and waits that end when the model reaches their revision (or time runs out)."""

from __future__ import annotations

import asyncio

import pytest

from gossamer.controlplane.own_writes import OwnWrites
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.testing.mesh import service

pytestmark = pytest.mark.asyncio


async def test_the_checked_snapshot_is_handed_over_only_on_the_model_it_was_checked_on() -> None:
    own = OwnWrites()
    before = ModelSnapshot()
    after = before.with_changes([parse_manifest(service("web", 8080))])
    other = before.with_changes([parse_manifest(service("db", 5432))])
    waiting = asyncio.create_task(own.wait(7, 5.0, (before, after)))
    await asyncio.sleep(0)  # (registered)
    assert own.handover(7, before) is after
    assert own.handover(7, other) is None  # something was stored between
    assert own.handover(6, before) is None  # not this plane's write
    own.reached(6)
    await asyncio.sleep(0)
    assert not waiting.done()
    own.reached(8)
    assert await waiting is True
    assert own.handover(7, before) is None  # forgotten once in


async def test_a_wait_the_model_never_reaches_ends_false() -> None:
    own = OwnWrites()
    assert await own.wait(3, 0.05, (ModelSnapshot(), ModelSnapshot())) is False
    assert own.handover(3, ModelSnapshot()) is None
