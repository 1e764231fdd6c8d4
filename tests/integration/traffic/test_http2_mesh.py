"""HTTP/2 end to end, as client and app see it: an HTTP/2 (h2c) client is served by a caller
sidecar and by the gateway, and a Service port's ``protocol`` decides what the app is
spoken to: ``http2`` (and ``grpc``) reach an h2c app in HTTP/2, ``http`` in HTTP/1.1,
whatever the client spoke."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from protocol_mesh import protocol_mesh

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WHERE = ("east-west", "ingress")


@pytest.mark.parametrize(("protocol", "app_sees"), [("http2", "2"), ("http", "1.1")])
async def test_h2c_clients_and_the_port_protocol(
    tmp_path: Path, protocol: str, app_sees: str
) -> None:
    async with (
        HttpBackend("h2app", "127.0.0.3") as app,
        protocol_mesh(tmp_path, [app.address], protocol=protocol) as mesh,
        httpx.AsyncClient(http1=False, http2=True, timeout=10, trust_env=False) as h2,
        httpx.AsyncClient(timeout=10, trust_env=False) as h1,
    ):
        for where in WHERE:

            async def answered(w: str = where) -> bool:
                try:
                    return (await h1.get(mesh.url(w) + "/")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(answered, timeout=30, what=f"{where} routing")
            for client, spoken in ((h2, "HTTP/2"), (h1, "HTTP/1.1")):
                r = await client.post(mesh.url(where) + "/p", content=b"b" * 200_000)
                assert (r.status_code, r.http_version) == (200, spoken), where
                seen = r.json()
                assert seen["http_version"] == app_sees, (where, spoken)
                assert seen["body_bytes"] == 200_000
