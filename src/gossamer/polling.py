"""Waiting without fixed sleeps: poll a condition until a deadline (``wait_until``), and
space out the attempts of something that fails (``Backoff``).

Both are here, in the core, so every package that waits or retries (the agent and its
control-plane client, the Envoy supervisor, the gateway, tests) uses the same two rules.
"""

from __future__ import annotations

import asyncio
import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gossamer.errors import ConfigError, PollTimeoutError

Predicate = Callable[[], object] | Callable[[], Awaitable[object]]


async def wait_until(
    predicate: Predicate,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 (a deadline for polling, named in the error)
    interval: float = 0.02,
    what: str = "condition",
) -> object:
    """Poll ``predicate`` (sync or async) until it returns a truthy value; return that value.

    Exceptions raised by the predicate propagate at once. Raises ``PollTimeoutError`` naming
    ``what`` and the last value seen if the deadline passes.
    """
    if timeout <= 0:
        raise ConfigError(f"wait_until: timeout must be > 0 seconds, got {timeout}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() >= deadline:
            raise PollTimeoutError(
                f"{what} was still not true after {timeout:g} s (last value: {value!r}); "
                "check the log of the process under test or raise the timeout"
            )
        await asyncio.sleep(interval)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter: the delay before retry ``n`` (0-based) is
    ``initial * factor**n`` capped at ``maximum``, scaled by a random factor in
    ``[1 - jitter, 1]`` (so many clients that failed together do not retry together).

    A policy, immutable (settings can hold one); ``retries()`` gives the counter one loop
    uses. Nothing here sleeps: callers wait the delays themselves (and can be woken).
    """

    initial: float = 0.2
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ConfigError(
                f"Backoff: need 0 < initial <= maximum, got {self.initial}, {self.maximum}"
            )
        if self.factor < 1:
            raise ConfigError(f"Backoff: factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"Backoff: jitter must be in [0, 1), got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay (seconds) before retry number ``attempt`` (0 = the first retry)."""
        base = min(self.maximum, self.initial * self.factor ** min(max(attempt, 0), 64))
        return base * (1 - self.jitter * (rng or random).random())

    def retries(self, rng: random.Random | None = None) -> Retries:
        """A fresh counter of attempts under this policy (``rng`` is for tests)."""
        return Retries(self, rng or random.Random())


@dataclass
class Retries:
    """The attempts of one retry loop: ``next()`` counts one and gives the delay before the
    next; ``reset()`` after a success (or a long enough run) starts over."""

    policy: Backoff
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0

    def next(self) -> float:
        delay = self.policy.delay(self.attempts, self.rng)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
