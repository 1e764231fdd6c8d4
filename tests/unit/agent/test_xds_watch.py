"""XdsWatch over real loopback sockets: one warning when no address answers, however many
checks fail, one line when one answers again, and which one."""

from __future__ import annotations

import asyncio

import pytest

from gossamer.agent.xds_watch import XdsWatch
from gossamer.testing.ports import free_port

pytestmark = pytest.mark.asyncio


async def test_one_line_per_event_not_per_check() -> None:
    dead, alive = ("127.0.0.1", free_port()), ("127.0.0.1", free_port())
    lines: list[str] = []
    watch = XdsWatch([dead, alive], who="host h", warn=lines.append, note=lines.append)
    for _ in range(3):
        assert not await watch.check()
    assert len(lines) == 1
    assert f"host h: no xDS address of the control plane answers (127.0.0.1:{dead[1]}, " in lines[0]
    server = await asyncio.start_server(lambda r, w: w.close(), *alive)
    async with server:
        for _ in range(3):
            assert await watch.check()
    assert lines[1:] == [f"host h: the control plane's xDS answers again (127.0.0.1:{alive[1]})"]


async def test_a_first_success_says_nothing() -> None:
    lines: list[str] = []
    address = ("127.0.0.1", free_port())
    server = await asyncio.start_server(lambda r, w: w.close(), *address)
    async with server:
        assert await XdsWatch([address], warn=lines.append, note=lines.append).check()
    assert lines == []
