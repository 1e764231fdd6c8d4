"""``DumpBroker``: config-dump requests per agent, handed out once, answered only by their
own agent, and a clear error when the host is offline or slow (no I/O)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from gossamer.errors import EnvoyError, NotFoundError, PollTimeoutError
from gossamer.registry.dumps import MAX_PENDING, DumpBroker

pytestmark = pytest.mark.asyncio

DUMP = {"configs": [{"@type": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"}]}


def broker() -> DumpBroker:
    ids = itertools.count(1)
    return DumpBroker(new_id=lambda: f"r{next(ids)}")


async def test_a_waiting_poll_gets_the_request_and_the_answer_reaches_the_asker() -> None:
    b = broker()
    poll = asyncio.create_task(b.poll("a1", timeout=5))
    ask = asyncio.create_task(
        b.config_dump("a1", "sidecar~default~web-1", host="vm-1", include_eds=True, timeout=5)
    )
    [request] = await poll
    assert request.to_json() == {
        "id": "r1",
        "kind": "config_dump",
        "nodeId": "sidecar~default~web-1",
        "includeEds": True,
    }
    b.answer("a1", "r1", dump=DUMP)
    assert await ask == DUMP
    assert b.pending("a1") == 0
    with pytest.raises(NotFoundError, match="no pending request 'r1'"):
        b.answer("a1", "r1", dump=DUMP)  # answered once


async def test_a_request_asked_before_the_poll_is_handed_out_once() -> None:
    b = broker()
    ask = asyncio.create_task(
        b.config_dump("a1", "sidecar~default~web-1", host="vm-1", include_eds=False, timeout=5)
    )
    await asyncio.sleep(0)
    [request] = await b.poll("a1", timeout=5)
    assert request.include_eds is False
    assert await b.poll("a1", timeout=0.01) == []  # not handed out twice
    b.answer("a1", request.id, dump=DUMP)
    assert await ask == DUMP


async def test_another_agent_cannot_answer_or_poll_it() -> None:
    b = broker()
    ask = asyncio.create_task(
        b.config_dump("a1", "sidecar~default~web-1", host="vm-1", include_eds=True, timeout=5)
    )
    await asyncio.sleep(0)
    assert await b.poll("a2", timeout=0.01) == []
    with pytest.raises(NotFoundError, match="agent a2 has no pending request 'r1'"):
        b.answer("a2", "r1", dump={"configs": []})
    [request] = await b.poll("a1", timeout=5)
    with pytest.raises(NotFoundError):
        b.answer("a2", request.id, dump={"configs": []})  # handed out, still not a2's
    b.answer("a1", request.id, dump=DUMP)
    assert await ask == DUMP


async def test_a_request_not_handed_out_cannot_be_answered() -> None:
    b = broker()
    ask = asyncio.create_task(
        b.config_dump("a1", "sidecar~default~web-1", host="vm-1", include_eds=True, timeout=5)
    )
    await asyncio.sleep(0)
    with pytest.raises(NotFoundError):
        b.answer("a1", "r1", dump=DUMP)  # guessed, never polled
    ask.cancel()


async def test_offline_and_slow_hosts_are_told_apart() -> None:
    b = broker()
    with pytest.raises(PollTimeoutError) as offline:
        await b.config_dump(
            "a1", "sidecar~default~web-1", host="vm-1", include_eds=True, timeout=0.05
        )
    assert str(offline.value).startswith(
        "host vm-1 (which runs sidecar~default~web-1) did not pick up the config-dump request "
        "within 0.05 s: its agent is offline"
    )
    assert b.pending("a1") == 0
    assert await b.poll("a1", timeout=0.01) == []  # the expired request is gone

    poll = asyncio.create_task(b.poll("a1", timeout=5))
    with pytest.raises(PollTimeoutError, match="took the config-dump request but did not answer"):
        await b.config_dump(
            "a1", "sidecar~default~web-1", host="vm-1", include_eds=True, timeout=0.05
        )
    [late] = await poll
    with pytest.raises(NotFoundError, match="its asker gave up"):
        b.answer("a1", late.id, dump=DUMP)


async def test_the_hosts_error_line_is_the_askers_error() -> None:
    b = broker()
    poll = asyncio.create_task(b.poll("a1", timeout=5))
    ask = asyncio.create_task(
        b.config_dump("a1", "sidecar~default~web-1", host="vm-1", include_eds=True, timeout=5)
    )
    [request] = await poll
    b.answer("a1", request.id, error="admin API at 127.0.0.1:1 refused")
    with pytest.raises(EnvoyError) as e:
        await ask
    assert str(e.value) == (
        "host vm-1 could not read the config dump of sidecar~default~web-1: admin API at "
        "127.0.0.1:1 refused"
    )


async def test_a_newer_poll_supersedes_an_older_one() -> None:
    """An older poll's connection may be dead: nothing is handed to it once a new one came."""
    b = broker()
    old = asyncio.create_task(b.poll("a1", timeout=5))
    await asyncio.sleep(0)
    new = asyncio.create_task(b.poll("a1", timeout=5))
    assert await old == []
    ask = asyncio.create_task(
        b.config_dump("a1", "sidecar~default~web-1", host="vm-1", include_eds=True, timeout=5)
    )
    [request] = await new
    b.answer("a1", request.id, dump=DUMP)
    assert await ask == DUMP


async def test_requests_of_a_host_that_never_polls_are_bounded() -> None:
    b = broker()
    asks = [
        asyncio.create_task(
            b.config_dump("a1", f"sidecar~default~w{i}", host="vm-1", include_eds=True, timeout=5)
        )
        for i in range(MAX_PENDING)
    ]
    await asyncio.sleep(0)
    with pytest.raises(PollTimeoutError, match=f"host vm-1 has {MAX_PENDING} config-dump requests"):
        await b.config_dump("a1", "sidecar~default~x", host="vm-1", include_eds=True, timeout=5)
    for ask in asks:
        ask.cancel()
    await asyncio.gather(*asks, return_exceptions=True)
    assert b.pending("a1") == 0


async def test_a_release_answers_the_open_poll_and_later_ones_at_once() -> None:
    """The server is stopping: a host's poll ends now rather than holding the stop."""
    b = broker()
    poll = asyncio.create_task(b.poll("a1", timeout=60))
    await asyncio.sleep(0)
    assert b.polling("a1")
    b.release()
    assert await asyncio.wait_for(poll, 1) == []
    assert await asyncio.wait_for(b.poll("a1", timeout=60), 1) == []
