"""A task cancelled inside an httpx request ends cancelled even when httpx answers the
cancellation with its own error (encode/httpx#2381): a retry loop around it stops instead
of running on (the demo once ignored Ctrl-C that way)."""

from __future__ import annotations

import ast
import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

import gossamer
from gossamer.agent.client import RegistryClient
from gossamer.cancel import raise_if_cancelling
from gossamer.errors import UnreachableError


class CancelAsConnectError(httpx.AsyncBaseTransport):
    """What httpcore may do: a request that never gets an answer, cancelled, fails with
    ``ConnectError``."""

    def __init__(self) -> None:
        self.requests = 0
        self.hang = True
        self.asked = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        self.asked.set()
        if not self.hang:
            raise httpx.ConnectError("refused")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise httpx.ConnectError("All connection attempts failed") from None
        raise AssertionError("unreachable")


@pytest.mark.asyncio
async def test_a_retry_loop_around_the_agent_client_stops_when_cancelled() -> None:
    transport = CancelAsConnectError()
    client = RegistryClient("http://127.0.0.1:9", "a-1", "cred", transport=transport)

    give_up = asyncio.Event()  # (only so that a failing test ends)

    async def retrying() -> None:
        while not give_up.is_set():
            try:
                await client.answer_request("r-1", {"error": "x"})
            except UnreachableError:
                await asyncio.sleep(0.01)

    task = asyncio.create_task(retrying())
    await transport.asked.wait()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=5)
    if not done:
        give_up.set()
        transport.hang = False
        task.cancel()  # (wakes the request it waits in again; the loop then sees give_up)
        await task
        raise AssertionError("the cancelled retry loop ran on: the cancellation was lost")
    assert task.cancelled()
    assert transport.requests == 1


@pytest.mark.asyncio
async def test_raise_if_cancelling_only_raises_in_a_task_asked_to_stop() -> None:
    raise_if_cancelling()  # not cancelled: nothing happens
    seen: list[str] = []

    async def handler() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # a library swallowed it
            await asyncio.sleep(10)
        try:
            raise_if_cancelling()
        except asyncio.CancelledError:
            seen.append("raised")
            raise

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["raised"]


def _handlers_without_the_check(tree: ast.AST) -> list[int]:
    """Lines of ``except`` clauses naming an httpx error inside a coroutine whose first
    statement is not ``raise_if_cancelling()``."""
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.ExceptHandler) or node.type is None:
                continue
            if "httpx." not in ast.unparse(node.type):
                continue
            first = node.body[0]
            call = first.value if isinstance(first, ast.Expr) else None
            if not (isinstance(call, ast.Call) and ast.unparse(call.func) == "raise_if_cancelling"):
                out.append(node.lineno)
    return out


def test_every_coroutine_handling_httpx_errors_checks_for_a_cancellation() -> None:
    src = Path(gossamer.__file__).parent
    missing = {
        str(path.relative_to(src)): lines
        for path in sorted(src.rglob("*.py"))
        if (lines := _handlers_without_the_check(ast.parse(path.read_text())))
    }
    assert missing == {}, "call raise_if_cancelling() first in these except clauses"
