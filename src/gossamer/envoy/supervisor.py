"""Keep one Envoy running: start it, restart it with back-off when it exits, give up after N
failed starts in a row, and stop it cleanly (drain, then SIGTERM, then SIGKILL).

One loop for the gateway (whose Envoy is its child, ``EnvoyProcess``) and the agent (whose
sidecars are detached so they outlive it, ``gossamer.agent.envoy.Sidecar``): both are a
``Supervised``. What a caller shows of it (status files, messages) it learns from the
events passed to ``on_event``; the loop itself logs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.errors import EnvoyError, GossamerError, PollTimeoutError
from gossamer.polling import Backoff, wait_until

State = Literal["starting", "running", "backing-off", "draining", "stopped"]
#: how often a drain checks whether Envoy's listeners are idle
DRAIN_POLL_S = 0.2


class Supervised(Protocol):
    """A started Envoy, whoever its parent is."""

    @property
    def pid(self) -> int: ...

    @property
    def running(self) -> bool: ...

    @property
    def admin(self) -> EnvoyAdmin: ...

    async def wait_exit(self) -> int | None:
        """Return once it exited; its exit status if known (only a parent knows it)."""
        ...

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, SIGKILL after ``grace`` seconds; return once it is gone."""
        ...


P = TypeVar("P", bound=Supervised)


@dataclass(frozen=True)
class Starting:
    """A start is being attempted (``starts`` counts them, the first one included)."""

    starts: int


@dataclass(frozen=True)
class Running(Generic[P]):
    """``proxy`` runs: just started, or (``adopted``) found running."""

    proxy: P
    adopted: bool


@dataclass(frozen=True)
class StartFailed:
    """A start failed for the ``failures``-th time in a row; the next one in ``retry_in``
    seconds, or none (None: the supervisor gives up and raises)."""

    error: GossamerError
    failures: int
    retry_in: float | None


@dataclass(frozen=True)
class Exited(Generic[P]):
    """``proxy`` exited by itself (``status``: its exit status if known); restarted in
    ``retry_in`` seconds."""

    proxy: P
    status: int | None
    retry_in: float


@dataclass(frozen=True)
class DrainFailed:
    """The drain could not be started (Envoy is stopped at once)."""

    error: EnvoyError


Event = Starting | Running[P] | StartFailed | Exited[P] | DrainFailed


@dataclass(frozen=True)
class Drain:
    """How to stop gracefully: ``fail_health_checks`` first (load balancers in front stop
    sending), then drain the listeners (only inbound ones with ``inbound_only``), then wait
    up to ``seconds``: until no client connection is open with ``until_idle``, else the
    whole time (callers already stopped sending, in-flight requests finish)."""

    seconds: float
    inbound_only: bool = False
    fail_health_checks: bool = False
    until_idle: bool = True


class EnvoySupervisor(Generic[P]):
    """``await supervisor.run(stop)`` keeps an Envoy from ``start()`` running until ``stop``
    is set (or the task is cancelled), leaving the last one running; then
    ``await supervisor.shutdown(drain)`` stops it. ``give_up_after`` failed starts in a row
    raise ``EnvoyError`` (None: retry forever); an Envoy that ran ``stable_after`` seconds
    starts the back-off over."""

    def __init__(
        self,
        start: Callable[[], Awaitable[P]],
        *,
        name: str,
        backoff: Backoff,
        stable_after: float,
        give_up_after: int | None = None,
        hint: str = "",
        on_event: Callable[[Event[P]], None] | None = None,
    ) -> None:
        self.name = name
        self.current: P | None = None
        self.state: State = "starting"
        self.starts = 0
        self._start = start
        self._backoff = backoff
        self._stable_after = stable_after
        self._give_up_after = give_up_after
        self._hint = hint
        self._on_event = on_event or (lambda _: None)

    def adopt(self, proxy: P) -> None:
        """Supervise ``proxy``, already running, rather than starting one."""
        self.current = proxy

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        retries = self._backoff.retries()
        failures = 0
        while not stop.is_set():
            proxy, adopted = self.current, True
            if proxy is None or not proxy.running:
                adopted = False
                try:
                    proxy = await self._start_one()
                except GossamerError as e:
                    failures += 1
                    delay = self._after_failure(e, failures, retries.next())
                    await self._pause(stop, delay)
                    continue
                failures = 0
            self.current = proxy
            self.state = "running"
            self._on_event(Running(proxy, adopted))
            since = loop.time()
            await _first_of(proxy.wait_exit(), stop.wait())
            if stop.is_set() and proxy.running:
                return
            status = await proxy.wait_exit()
            if loop.time() - since >= self._stable_after:
                retries.reset()
            delay = retries.next()
            self._on_event(Exited(proxy, status, delay))
            await self._pause(stop, delay)

    async def _start_one(self) -> P:
        self.current = None
        self.state = "starting"
        self.starts += 1
        self._on_event(Starting(self.starts))
        return await self._start()

    def _after_failure(self, error: GossamerError, failures: int, delay: float) -> float:
        if self._give_up_after is not None and failures >= self._give_up_after:
            self.state = "stopped"
            self._on_event(StartFailed(error, failures, None))
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise EnvoyError(
                f"{self.name}: Envoy failed to start {failures} times in a row (the last "
                f"time: {first}); {self._hint or 'fix that and start again'}"
            ) from error
        self._on_event(StartFailed(error, failures, delay))
        return delay

    async def _pause(self, stop: asyncio.Event, delay: float) -> None:
        """Wait ``delay`` seconds, or less if asked to stop."""
        self.state = "backing-off"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stop.wait()

    async def shutdown(self, drain: Drain | None = None, *, grace: float = 10.0) -> None:
        """Stop the current Envoy: drain it (if ``drain`` and it runs), then SIGTERM, then
        SIGKILL after ``grace`` seconds. Even if cancelled, it is gone before this returns."""
        proxy = self.current
        try:
            if proxy is not None and proxy.running and drain is not None:
                self.state = "draining"
                await self._drain(proxy, drain)
        finally:
            try:
                if proxy is not None:
                    await proxy.stop(grace)
            finally:
                self.current = None
                self.state = "stopped"

    async def _drain(self, proxy: P, drain: Drain) -> None:
        try:
            if drain.fail_health_checks:
                await proxy.admin.fail_health_checks()
            await proxy.admin.drain_listeners(graceful=True, inbound_only=drain.inbound_only)
        except EnvoyError as e:
            self._on_event(DrainFailed(e))
            return
        if drain.seconds <= 0:
            return

        async def done() -> bool:
            if not proxy.running:
                return True
            if not drain.until_idle:
                return False
            try:
                return await proxy.admin.open_connections() == 0
            except EnvoyError:
                return False

        with contextlib.suppress(PollTimeoutError):
            await wait_until(
                done, timeout=drain.seconds, interval=DRAIN_POLL_S, what=f"{self.name} drained"
            )


async def _first_of(*waits: Coroutine[Any, Any, object]) -> None:
    """Return once one of ``waits`` is done; the others are cancelled."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(w) for w in waits]
        for task in tasks:
            task.add_done_callback(lambda _: [t.cancel() for t in tasks])
