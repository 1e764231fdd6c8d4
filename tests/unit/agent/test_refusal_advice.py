"""A refused join or credential says what to do once: the control plane's own advice when
it gave one, the agent's only when the answer carried none."""

from __future__ import annotations

import httpx
import pytest

from gossamer.agent.client import RegistryClient
from gossamer.errors import RefusedError

pytestmark = pytest.mark.asyncio

UNKNOWN = (
    "the join token is not known to this control plane: check it was copied whole, or "
    "create one with `gossamer token create`"
)


def _answering(status: int, body: object) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(status, json=body))


async def test_the_servers_advice_is_not_repeated() -> None:
    body = {"code": "unauthorized", "errors": [UNKNOWN], "reason": "token_unknown"}
    async with RegistryClient("http://127.0.0.1:1", transport=_answering(401, body)) as api:
        with pytest.raises(RefusedError) as refused:
            await api.join("gsm_bogus", "h1")
    (line,) = refused.value.errors
    assert line == f"the join token was refused: {UNKNOWN}"
    assert line.count("gossamer token create") == 1


async def test_an_answer_without_advice_gets_the_agents() -> None:
    transport = _answering(401, {"detail": "Unauthorized"})
    async with RegistryClient("http://127.0.0.1:1", transport=transport) as api:
        with pytest.raises(RefusedError) as refused:
            await api.join("gsm_bogus", "h1")
    (line,) = refused.value.errors
    assert line.count("gossamer token create") == 1
