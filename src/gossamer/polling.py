"""Wait for a condition by polling with a deadline (tests never wait with fixed sleeps)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

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
