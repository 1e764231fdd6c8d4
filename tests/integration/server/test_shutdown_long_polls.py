"""A control plane stops at once while long polls wait on it: each is answered with what is
current (200) rather than holding the stop for the rest of its ``wait`` (the hosts',
decision points' and rate-limit service's polls wait up to a minute; every stop with a
connected agent took ~30 s)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import pytest

from gossamer.api.authz_graph import GRAPH_PATH
from gossamer.polling import wait_until
from gossamer.ratelimit.rules import RULES_PATH
from gossamer.server.http_server import STOP_GRACE_S
from gossamer.testing.controlplane import api_client, running_control_plane

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]


async def test_open_long_polls_are_answered_when_the_control_plane_stops(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as clients:
        async with contextlib.AsyncExitStack() as plane:
            app = await plane.enter_async_context(running_control_plane(tmp_path / "cp"))
            client = await clients.enter_async_context(api_client(app, timeout=90))
            polls: list[asyncio.Task[httpx.Response]] = []
            for path in (RULES_PATH, GRAPH_PATH):
                version = (await client.get(path)).json()["version"]
                params = {"after": version, "wait": 60}
                polls.append(asyncio.create_task(client.get(path, params=params)))
            assert app.api is not None
            server = app.api
            await wait_until(
                lambda: server.requests_in_progress == len(polls),
                timeout=30,
                what="both long polls waiting on the server",
            )
            assert not any(p.done() for p in polls)
            began = loop.time()
        took = loop.time() - began
        answers = [await p for p in polls]
    assert [a.status_code for a in answers] == [200, 200], [a.text[:200] for a in answers]
    assert took < STOP_GRACE_S, f"the stop took {took:.1f} s"
