"""The supervisor gives up after N failed starts in a row, with the last error, and retries
for ever without a limit (the agent's sidecars)."""

from __future__ import annotations

import asyncio

import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.supervisor import EnvoySupervisor, Event, StartFailed, Starting
from gossamer.errors import EnvoyError
from gossamer.polling import Backoff

pytestmark = pytest.mark.asyncio

QUICK = Backoff(initial=0.001, maximum=0.002)


async def _never_starts() -> EnvoyProcess:
    raise EnvoyError("test envoy exited with status 1 while starting\n--- last lines ---\nboom")


async def test_gives_up_after_n_failed_starts_in_a_row() -> None:
    events: list[Event[EnvoyProcess]] = []
    supervisor = EnvoySupervisor(
        _never_starts,
        name="test envoy",
        backoff=QUICK,
        stable_after=60,
        give_up_after=3,
        hint="see envoy.log",
        on_event=events.append,
    )
    with pytest.raises(EnvoyError) as info:
        await asyncio.wait_for(supervisor.run(asyncio.Event()), 30)
    assert str(info.value) == (
        "test envoy: Envoy failed to start 3 times in a row (the last time: test envoy exited "
        "with status 1 while starting); see envoy.log"
    )
    failed = [e for e in events if isinstance(e, StartFailed)]
    assert [(e.failures, e.retry_in is None) for e in failed] == [(1, False), (2, False), (3, True)]
    assert sum(isinstance(e, Starting) for e in events) == supervisor.starts == 3
    assert supervisor.state == "stopped"


async def test_without_a_limit_it_retries_until_stopped() -> None:
    failures: list[int] = []
    stop = asyncio.Event()

    def seen(event: Event[EnvoyProcess]) -> None:
        if isinstance(event, StartFailed):
            failures.append(event.failures)
            if event.failures == 20:
                stop.set()

    supervisor = EnvoySupervisor(
        _never_starts, name="test envoy", backoff=QUICK, stable_after=60, on_event=seen
    )
    await asyncio.wait_for(supervisor.run(stop), 30)
    assert failures == list(range(1, 21))
    assert supervisor.current is None
