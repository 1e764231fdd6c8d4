"""``DumpBroker.stats``: a ``stats`` request carries plain stat-name prefixes (never a
pattern or URL), and only counters under them reach the asker, whatever a host sends."""

from __future__ import annotations

import asyncio

import pytest

from gossamer.errors import EnvoyError, PollTimeoutError
from gossamer.registry.dumps import DumpBroker

WEB = "sidecar~default~web-1"
pytestmark = pytest.mark.asyncio

PREFIXES = ["cluster.outbound|default/reviews|", "http.outbound|127.0.0.2:9080."]


async def test_stats_request_and_answer_kept_to_its_prefixes() -> None:
    b = DumpBroker(new_id=lambda: "r1")
    poll = asyncio.create_task(b.poll("a1", timeout=5))
    ask = asyncio.create_task(b.stats("a1", WEB, PREFIXES, host="vm-1", timeout=5))
    [request] = await poll
    assert request.to_json() == {"id": "r1", "kind": "stats", "nodeId": WEB, "prefixes": PREFIXES}
    answer = {
        "cluster.outbound|default/reviews|http.upstream_rq_timeout": 2,
        "http.outbound|127.0.0.2:9080.fault.aborts_injected": 5,
        "cluster.outbound|default/secret|http.upstream_rq_total": 9,  # not asked for
        "http.outbound|127.0.0.2:9080.rq_text": "x",  # not a number
    }
    b.answer("a1", "r1", dump={"stats": answer})
    assert await ask == {
        "cluster.outbound|default/reviews|http.upstream_rq_timeout": 2,
        "http.outbound|127.0.0.2:9080.fault.aborts_injected": 5,
    }


async def test_stats_errors_say_stats() -> None:
    b = DumpBroker(new_id=lambda: "r1")
    with pytest.raises(PollTimeoutError, match="did not pick up the stats request within"):
        await b.stats("a1", WEB, PREFIXES, host="vm-1", timeout=0.05)
    poll = asyncio.create_task(b.poll("a1", timeout=5))
    ask = asyncio.create_task(b.stats("a1", WEB, PREFIXES, host="vm-1", timeout=5))
    await poll
    b.answer("a1", "r1", error="this host runs no Envoy")
    with pytest.raises(EnvoyError, match="could not read the stats of sidecar~default~web-1"):
        await ask
    with pytest.raises(ValueError):
        await b.stats("a1", WEB, [], host="vm-1")
