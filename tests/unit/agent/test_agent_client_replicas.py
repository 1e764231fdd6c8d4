"""``RegistryClient`` with several control-plane replicas: a call goes to the next one when
the current one cannot be reached or lost its store, once to each; nothing else moves it,
and joining never does (a join token is good once)."""

from __future__ import annotations

import httpx
import pytest

from gossamer.agent.client import RegistryClient, split_servers
from gossamer.errors import ConfigError, RejectedError, ServerError, UnreachableError

SERVERS = "http://cp-1.test:7070,http://cp-2.test:7070/, http://cp-3.test:7070"
LOST = {"errors": ["the store is unreachable"], "code": "store"}


def _replicas(answers: dict[str, int | None]) -> tuple[httpx.MockTransport, list[str]]:
    """Each host answers its status with LOST's body for 503 (None: cannot connect); the
    hosts asked, in order."""
    asked: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        host = request.url.host
        asked.append(host)
        status = answers[host]
        if status is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(status, json=LOST if status == 503 else {"ok": True})

    return httpx.MockTransport(handle), asked


def test_the_servers_are_split_and_an_empty_one_is_refused() -> None:
    assert split_servers(SERVERS) == [
        "http://cp-1.test:7070",
        "http://cp-2.test:7070",
        "http://cp-3.test:7070",
    ]
    with pytest.raises(ConfigError, match="empty entry"):
        split_servers("http://cp-1.test:7070,,http://cp-2.test:7070")


@pytest.mark.asyncio
async def test_a_call_moves_on_past_an_unreachable_replica_and_one_without_its_store() -> None:
    transport, asked = _replicas({"cp-1.test": None, "cp-2.test": 503, "cp-3.test": 200})
    async with RegistryClient(SERVERS, "a-1", "cred", transport=transport) as api:
        assert await api.report_health({}) == {"ok": True}
        assert asked == ["cp-1.test", "cp-2.test", "cp-3.test"]
        assert api.server == "http://cp-3.test:7070"
        await api.report_health({})  # it stays with the one that answered
        assert asked[3:] == ["cp-3.test"]


@pytest.mark.asyncio
async def test_when_no_replica_answers_the_last_error_is_raised_after_one_try_each() -> None:
    transport, asked = _replicas({"cp-1.test": None, "cp-2.test": None, "cp-3.test": None})
    async with RegistryClient(SERVERS, "a-1", "cred", transport=transport) as api:
        with pytest.raises(UnreachableError, match=r"cp-3\.test"):
            await api.report_health({})
    assert asked == ["cp-1.test", "cp-2.test", "cp-3.test"]


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "error"), [(500, ServerError), (409, RejectedError)])
async def test_other_errors_do_not_move_the_call(status: int, error: type[Exception]) -> None:
    transport, asked = _replicas({"cp-1.test": status, "cp-2.test": 200, "cp-3.test": 200})
    async with RegistryClient(SERVERS, "a-1", "cred", transport=transport) as api:
        with pytest.raises(error):
            await api.report_health({})
    assert asked == ["cp-1.test"]


@pytest.mark.asyncio
async def test_joining_uses_the_first_replica_only() -> None:
    transport, asked = _replicas({"cp-1.test": None, "cp-2.test": 200, "cp-3.test": 200})
    async with RegistryClient(SERVERS, transport=transport) as api:
        with pytest.raises(UnreachableError):
            await api.join("gsm1-less-token", "vm-1")
    assert asked == ["cp-1.test"]
