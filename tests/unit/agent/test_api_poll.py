"""``follow_document`` over several control-plane replicas: a replica that does not answer
is passed over at once (no back-off while another may answer), and the poll stays with the
replica that answered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gossamer.agent.api_poll import follow_document
from gossamer.polling import Backoff, wait_until
from gossamer.testing.ports import free_port

pytestmark = pytest.mark.asyncio

#: a back-off no test waits out: waiting it means the replica was not passed over
NEVER = Backoff(initial=600.0, maximum=600.0, jitter=0.0)


@contextlib.asynccontextmanager
async def document_server(version: str, polls: list[str]) -> AsyncIterator[str]:
    """An HTTP server answering every GET with ``{"version": version}``; each request's
    target is appended to ``polls``."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                polls.append(line.decode().split()[1])
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                body = json.dumps({"version": version}).encode()
                head = f"HTTP/1.1 200 OK\r\ncontent-length: {len(body)}\r\n"
                writer.write(head.encode() + b"content-type: application/json\r\n\r\n" + body)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def follow(servers: str, seen: list[str]) -> None:
    def parse(data: Any, where: str) -> str:
        return str(data["version"])

    await follow_document(
        servers, "token", "/v1/doc", parse, lambda v: v, seen.append, wait_s=0.05, backoff=NEVER
    )


async def test_a_replica_that_does_not_answer_is_passed_over_without_a_back_off() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    polls: list[str] = []
    seen: list[str] = []
    async with document_server("7", polls) as live, asyncio.TaskGroup() as tg:
        task = tg.create_task(follow(f"{dead},{live}", seen))
        await wait_until(lambda: seen == ["7"], timeout=10, what="the document from the live one")
        # the poll stays with the live replica: several more polls, the version unchanged
        await wait_until(lambda: len(polls) >= 3, timeout=10, what="polls of the live replica")
        task.cancel()
    assert seen == ["7"]
    assert all(p.startswith("/v1/doc?after=") for p in polls)


async def test_with_every_replica_down_it_tries_each_once_then_backs_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = (f"http://127.0.0.1:{free_port()}" for _ in range(2))
    seen: list[str] = []
    caplog.set_level(logging.WARNING, logger="gossamer.agent.api_poll")
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(follow(f"{first},{second}", seen))
        await wait_until(
            lambda: any("again in" in r.getMessage() for r in caplog.records),
            timeout=10,
            what="the back-off after both replicas failed",
        )
        task.cancel()
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith(f"{first}/v1/doc: ") and f"trying {second}" in messages[0]
    assert messages[1].startswith(f"{second}/v1/doc: ") and "again in 600.0s" in messages[1]
    assert len(messages) == 2 and seen == []
