"""Cancellation that a library turned into its own error.

httpx (through httpcore and anyio) may answer a task's cancellation that lands inside a
request with a ``ConnectError``, a timeout or another ``httpx.HTTPError`` instead of
``CancelledError`` (encode/httpx#2381). Code that catches those errors to retry or to
report would then swallow the cancellation: a retry loop runs on, and the ``TaskGroup``
waiting for it never ends (seen: the demo ignoring Ctrl-C). Every handler of a library's
transport errors in a coroutine calls ``raise_if_cancelling()`` first.
"""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Raise ``CancelledError`` if the current task was asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
