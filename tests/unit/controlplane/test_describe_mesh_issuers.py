"""``describe_mesh``: an inline issuer shows its kids; a uri issuer not fetched yet shows no
keys and no fetch; once fetched, the keys and the success; failing, since when and why with
the keys kept (a real plane over the memory store, the provider a ``httpx.MockTransport``)."""

from __future__ import annotations

import json

import httpx
import pytest

from gossamer.controlplane.describe_mesh import describe_mesh
from gossamer.controlplane.jwks_fetch import JwksFetcher
from gossamer.controlplane.jwks_refresh import JwksRefresher
from gossamer.model import parse_yaml
from gossamer.testing.controlplane import memory_control_plane
from gossamer.testing.jwt_tokens import TokenIssuer

URI = "https://idp.example/jwks.json"
INLINE = TokenIssuer("https://inline.example", kid="in-1").jwks()
MESH = f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec:
  authentication:
    jwt:
    - {{issuer: https://inline.example, jwks: {{inline: {json.dumps(INLINE)}}}}}
    - {{issuer: https://idp.example, audiences: [shop], jwks: {{uri: '{URI}'}}}}
"""


@pytest.mark.asyncio
async def test_issuers_keys_and_fetches_are_described() -> None:
    answer: list[str | None] = [TokenIssuer("https://idp.example", kid="a").jwks()]

    def handle(request: httpx.Request) -> httpx.Response:
        if answer[0] is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, text=answer[0])

    async with memory_control_plane() as plane:
        now = [0.0]
        fetcher = JwksFetcher(transport=httpx.MockTransport(handle))
        refresher = JwksRefresher(plane, fetcher, clock=lambda: now[0])
        await plane.apply(parse_yaml(MESH, "mesh.yaml"))
        assert plane.model is not None
        inline, uri = describe_mesh(plane.model, refresher)["issuers"]
        assert (inline["source"], inline["kids"]) == ("inline", ["in-1"])
        assert (uri["source"], uri["uri"], uri["refreshInterval"]) == ("uri", URI, 300.0)
        assert (uri["keys"], uri["fetch"]) == (None, None)

        await refresher.refresh()
        fetched = describe_mesh(plane.model, refresher)["issuers"][1]
        assert fetched["keys"]["kids"] == ["a"] and fetched["fetch"]["lastSuccess"]
        assert fetched["fetch"]["failingSince"] is None and fetched["fetch"]["failures"] == 0

        answer[0], now[0] = None, 301.0  # down when the next fetch is due
        await refresher.refresh()
        failing = describe_mesh(plane.model, refresher)["issuers"][1]["fetch"]
        assert failing["failingSince"] and failing["failures"] == 1
        assert "connection refused" in failing["error"]
        assert failing["lastSuccess"] == fetched["fetch"]["lastSuccess"]
        assert 0 < failing["nextAttemptIn"] <= 1
        assert describe_mesh(plane.model, refresher)["issuers"][1]["keys"] == fetched["keys"]
