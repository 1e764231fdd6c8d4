"""``Singletons``: jobs run while this replica leads, stop when it stops leading, start
again when it leads again; a failing job starts again; ``SoleLeader`` always leads."""

from __future__ import annotations

import asyncio

import pytest

from gossamer.controlplane import leadership
from gossamer.controlplane.leadership import SINGLETONS, Singletons, SoleLeader
from gossamer.polling import wait_until
from gossamer.store.election import Election

pytestmark = pytest.mark.asyncio


class Job:
    def __init__(self, fail_first: int = 0) -> None:
        self.running = False
        self.starts = 0
        self.fail_first = fail_first

    async def __call__(self) -> None:
        self.starts += 1
        if self.starts <= self.fail_first:
            raise RuntimeError("boom")
        self.running = True
        try:
            await asyncio.Event().wait()
        finally:
            self.running = False


async def test_jobs_follow_the_leadership() -> None:
    election = Election(SINGLETONS, "cp-a")
    job = Job()
    singletons = Singletons(election, [("job", job)])
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(singletons.run())
        await asyncio.sleep(0.01)
        assert job.starts == 0  # not leading: nothing runs
        election.won(7)
        await wait_until(lambda: job.running, timeout=5, what="the job to start")
        election.saw("cp-b")
        await wait_until(lambda: not job.running, timeout=5, what="the job to stop")
        election.won(9)
        await wait_until(lambda: job.running, timeout=5, what="the job to start again")
        assert (job.starts, singletons.terms) == (2, 2)
        run.cancel()
    assert not job.running


async def test_a_failing_job_starts_again_while_leading(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leadership, "RESTART_S", 0.01)
    job = Job(fail_first=2)
    async with asyncio.TaskGroup() as tg:
        run = tg.create_task(Singletons(SoleLeader(), [("job", job)]).run())
        await wait_until(lambda: job.running, timeout=5, what="the job to run")
        assert job.starts == 3
        run.cancel()


async def test_the_sole_leader_needs_no_fence() -> None:
    sole = SoleLeader()
    assert sole.leading and sole.fence() is None
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sole.changed(), 0.01)
