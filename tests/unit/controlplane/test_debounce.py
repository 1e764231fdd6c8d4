"""When the plane publishes after changes (``Debouncer``): a lone change at once, a burst
once it is quiet, and never two publishes within one debounce period."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from gossamer.controlplane.debounce import MAX_DEBOUNCE_FACTOR, Debouncer

pytestmark = pytest.mark.asyncio


class Publishes:
    """A ``publish`` that records when it started and ended, and the burst start it got."""

    def __init__(self, takes: float = 0.0) -> None:
        self.takes = takes
        self.spans: list[tuple[float, float]] = []
        self.firsts: list[float] = []
        #: set when a publish begins
        self.began = asyncio.Event()

    async def __call__(self, first: float) -> None:
        began = time.monotonic()
        self.firsts.append(first)
        self.began.set()
        if self.takes:
            await asyncio.sleep(self.takes)  # (the publish's own work)
        self.spans.append((began, time.monotonic()))

    async def until(self, count: int, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while len(self.spans) < count:
            assert time.monotonic() < deadline, f"{len(self.spans)} of {count} publishes"
            await asyncio.sleep(0.002)


@asynccontextmanager
async def running(debounce: float, publish: Publishes) -> AsyncIterator[Debouncer]:
    debouncer = Debouncer()
    task = asyncio.create_task(debouncer.run(lambda: debounce, publish))
    try:
        yield debouncer
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_lone_change_is_published_at_once() -> None:
    publish = Publishes()
    async with running(5.0, publish) as debouncer:
        marked = time.monotonic()
        debouncer.mark()
        await publish.until(1, within=2.0)  # (a 5 s debounce would miss this deadline)
    assert publish.spans[0][0] - marked < 1.0
    assert publish.firsts[0] >= marked


@pytest.mark.parametrize(
    "takes",
    [0.0, 0.1 * MAX_DEBOUNCE_FACTOR + 0.1],
    ids=["made-after-a-publish", "made-during-a-publish-longer-than-the-cap"],
)
async def test_a_change_made_after_or_during_a_publish_waits_a_period_after_it(
    takes: float,
) -> None:
    """Made during a publish that takes longer than a burst's cap, the change still waits a
    period after it ends: the loop is not handed from one publish to the next."""
    debounce = 0.1
    publish = Publishes(takes=takes)
    async with running(debounce, publish) as debouncer:
        debouncer.mark()
        await asyncio.wait_for(publish.began.wait(), 5.0)
        debouncer.mark()
        await publish.until(2)
    (_, ended), (began, _) = publish.spans
    assert began - ended >= debounce


async def test_a_change_after_a_quiet_period_is_published_at_once() -> None:
    publish = Publishes()
    debounce = 0.1
    async with running(debounce, publish) as debouncer:
        debouncer.mark()
        await publish.until(1)
        # the period passes with nothing marked
        await asyncio.sleep(publish.spans[0][1] + debounce - time.monotonic())
        marked = time.monotonic()
        debouncer.mark()
        await publish.until(2)
    assert publish.spans[1][0] - marked < debounce


async def test_a_steady_trickle_is_published_once_per_period_at_most() -> None:
    """Changes every 10 ms for 1.2 s under a 100 ms debounce: the trickle still reaches the
    proxies (a burst is published within its cap of periods), and no two publishes are
    closer than one period: a change made while a publish runs counts from its end."""
    publish = Publishes(takes=0.02)
    debounce = 0.1
    async with running(debounce, publish) as debouncer:
        began = time.monotonic()
        for _ in range(120):
            last = time.monotonic()
            debouncer.mark()
            await asyncio.sleep(0.01)
        ended = time.monotonic()
        deadline = ended + 5.0
        while not publish.spans or publish.spans[-1][0] < last:  # (the trickle's tail)
            assert time.monotonic() < deadline, "the last change was never published"
            await asyncio.sleep(0.002)
    spans = publish.spans
    # the first change at once, and at least one more within the trickle (its cap)
    assert len([s for s, _ in spans if s < ended]) >= 2, (began, ended, spans)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start - end >= debounce, spans
    cap = debounce * MAX_DEBOUNCE_FACTOR + publish.takes
    for first, (start, _) in zip(publish.firsts, spans, strict=True):
        assert start - first <= cap + 0.25, (first, start)  # (+ a loaded machine's lag)


async def test_no_debounce_publishes_every_change_at_once() -> None:
    publish = Publishes()
    async with running(0.0, publish) as debouncer:
        for n in range(1, 4):
            debouncer.mark()
            await publish.until(n, within=1.0)


async def test_a_change_soon_after_a_direct_publish_waits_for_the_period() -> None:
    """``apply --wait`` publishes directly (not through ``run``): it counts all the same."""
    publish = Publishes()
    debounce = 0.3
    async with running(debounce, publish) as debouncer:
        debouncer.published()
        published = time.monotonic()
        debouncer.mark()
        await publish.until(1)
    assert publish.spans[0][0] - published >= debounce
