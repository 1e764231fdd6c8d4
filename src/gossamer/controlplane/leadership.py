"""Which replica does the work only one may do (the singletons), and how its writes are
fenced.

Every control-plane replica is a peer for the API and xDS, but some work must be done by
one of them at a time: refreshing the keys of ``jwks.uri`` issuers (each refresh writes
them), driving a root rotation from phase to phase. A ``Leadership`` says whether this
replica leads and gives the ``Fence`` its singleton writes carry, so a replica that lost
its leadership (a long pause, a partition) cannot overwrite the new leader's work: the
store refuses the write (``FencedError``).

``SoleLeader`` is the leadership of a store one process owns (SQLite, memory): it always
leads and needs no fence. ``store.etcd_leader.EtcdLeader`` elects one replica over etcd.
``Singletons`` runs the singleton jobs while this replica leads and cancels them when it
stops leading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from gossamer.store.base import Fence

log = logging.getLogger(__name__)

#: the role every singleton runs under
SINGLETONS = "singletons"
#: seconds before a singleton job that failed starts again (while still leading)
RESTART_S = 5.0

Job = Callable[[], Coroutine[Any, Any, None]]


class Leadership(Protocol):
    role: str

    @property
    def leading(self) -> bool:
        """Whether this replica leads ``role`` now."""
        ...

    @property
    def leader(self) -> str | None:
        """The replica leading ``role`` as this one last saw it (None: unled or unknown)."""
        ...

    def fence(self) -> Fence | None:
        """The fence a singleton's write carries (None: the store needs none);
        ``FencedError`` when this replica does not lead."""
        ...

    async def changed(self) -> None:
        """Return at the next change of :attr:`leading`."""
        ...


class SoleLeader:
    """The leadership of a store one process owns: it always leads, with no fence."""

    def __init__(self, role: str = SINGLETONS) -> None:
        self.role = role

    @property
    def leading(self) -> bool:
        return True

    @property
    def leader(self) -> str | None:
        return "this process"

    def fence(self) -> Fence | None:
        return None

    async def changed(self) -> None:
        await asyncio.Event().wait()  # never changes


class Singletons:
    """Runs ``jobs`` (name, coroutine function) while ``leadership`` leads; cancels them
    when it stops leading and starts them again when it leads again. A job that fails is
    logged and started again after ``RESTART_S`` seconds."""

    def __init__(self, leadership: Leadership, jobs: Sequence[tuple[str, Job]]) -> None:
        self.leadership = leadership
        self.jobs = list(jobs)
        #: how many times this replica started leading
        self.terms = 0

    async def run(self) -> None:
        names = ", ".join(name for name, _ in self.jobs)
        while True:
            while not self.leadership.leading:
                await self.leadership.changed()
            self.terms += 1
            log.info("leading %r: running %s", self.leadership.role, names)
            async with asyncio.TaskGroup() as tg:
                running = [tg.create_task(self._keep(name, job)) for name, job in self.jobs]
                while self.leadership.leading:
                    await self.leadership.changed()
                for task in running:
                    task.cancel()
            log.warning(
                "no longer leading %r (now %s): stopped %s",
                self.leadership.role,
                self.leadership.leader or "unled",
                names,
            )

    async def _keep(self, name: str, job: Job) -> None:
        while True:
            try:
                await job()
                return
            except Exception as e:
                log.warning("%s failed (%s); starting it again in %.0f s", name, e, RESTART_S)
                await asyncio.sleep(RESTART_S)
