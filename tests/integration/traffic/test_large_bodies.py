"""Bodies larger than Envoy's buffers through the mesh, as a client sees it: a 10 MiB upload
and download east-west and through the gateway (sidecars buffer 1 MiB per connection, the
gateway 32 KiB), and what retries do with them: Envoy keeps a copy of a request body for a
retry only up to its buffer, so a large upload is never retried (it still succeeds when
the first try does) while a small one is."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from protocol_mesh import SERVICE, ProtocolMesh, protocol_mesh, route
from traffic_mesh import ScriptedBackend

from gossamer.polling import wait_until
from gossamer.testing.backends.http_echo import Receive, Scope, Send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

MIB = 1024 * 1024
SIZE = 10 * MIB
CHUNK = 64 * 1024
WHERE = ("east-west", "ingress")
_BYTES = re.compile(r"/bytes/(\d{1,9})")


class BulkBackend(ScriptedBackend):
    """A ``ScriptedBackend`` that also streams ``/bytes/N``: N bytes in 64 KiB chunks."""

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _BYTES.fullmatch(scope.get("path", ""))
        if scope["type"] != "http" or match is None:
            await super()._app(scope, receive, send)
            return
        while (await receive()).get("more_body"):
            pass
        size = int(match[1])
        headers = [(b"content-length", str(size).encode()), (b"x-backend", self.name.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for start in range(0, size, CHUNK):
            chunk = b"z" * min(CHUNK, size - start)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


async def chunks(size: int) -> AsyncIterator[bytes]:
    """A streamed request body (chunked: no content-length, nothing held in memory)."""
    for start in range(0, size, CHUNK):
        yield b"u" * min(CHUNK, size - start)


async def served(mesh: ProtocolMesh, client: httpx.AsyncClient) -> None:
    for where in WHERE:

        async def answered(w: str = where) -> bool:
            try:
                return (await client.get(mesh.url(w) + "/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(answered, timeout=30, what=f"{where} routing")


async def retries_of(mesh: ProtocolMesh) -> int:
    stats = await mesh.caller.stats(r"^cluster\.outbound\|.*\.upstream_rq_retry$")
    return sum(stats.values())


async def test_ten_mib_up_and_down_east_west_and_through_the_gateway(tmp_path: Path) -> None:
    async with (
        BulkBackend("bulk", "127.0.0.3") as app,
        protocol_mesh(tmp_path, [app.address]) as mesh,
        httpx.AsyncClient(timeout=60, trust_env=False) as client,
    ):
        await served(mesh, client)
        for where in WHERE:
            r = await client.post(mesh.url(where) + "/upload", content=chunks(SIZE))
            assert r.status_code == 200, (where, r.status_code, r.text)
            assert r.json()["body_bytes"] == SIZE, where
            async with client.stream("GET", mesh.url(where) + f"/bytes/{SIZE}") as down:
                assert down.status_code == 200, where
                got = 0
                async for piece in down.aiter_bytes():
                    got += len(piece)
            assert got == SIZE, where


async def test_a_large_upload_is_never_retried_but_succeeds(tmp_path: Path) -> None:
    # Every other request fails 503; the rule retries 5xx.
    rules = [
        {"destinations": [{"service": SERVICE}], "retries": {"attempts": 2, "retryOn": ["5xx"]}}
    ]
    async with (
        BulkBackend("bulk", "127.0.0.3", fails=lambda n: n % 2 == 0) as app,
        protocol_mesh(tmp_path, [app.address], extra=[route(rules)]) as mesh,
        httpx.AsyncClient(timeout=60, trust_env=False) as client,
    ):
        await served(mesh, client)
        url = mesh.url("east-west") + "/upload"
        # A small body is kept for a retry: the failed first try is invisible.
        app.served = 0
        before = await retries_of(mesh)
        r = await client.post(url, content=b"s" * 1000)
        assert r.status_code == 200 and await retries_of(mesh) == before + 1
        # A 10 MiB body outgrows the buffer: no retry is possible, the first try's answer
        # is the client's (here the failure) ...
        app.served = 0
        r = await client.post(url, content=chunks(SIZE))
        assert r.status_code == 503 and await retries_of(mesh) == before + 1
        abandoned = await mesh.caller.stats(r"^cluster\.outbound\|.*\.retry_or_shadow_abandoned$")
        assert sum(abandoned.values()) >= 1
        # ... and when the first try succeeds, so does the upload, retries configured or not.
        r = await client.post(url, content=chunks(SIZE))
        assert r.status_code == 200 and r.json()["body_bytes"] == SIZE
