"""A real Envoy gets its certificate and trust bundle from the agent's SDS server over a
Unix socket, presents them to a TLS client, and swaps in a rotated certificate under
continuous traffic without a failed request or a dropped connection."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path

import httpx
import pytest
from tests.integration.agent.sds_helpers import (
    PROXY,
    MeshCa,
    client_context,
    peer_certificate,
    tls_bootstrap,
)

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.sds.secrets import (
    SecretCache,
    bundle_version,
    identity_secret,
    trust_bundle_secret,
)
from gossamer.envoy.sds.server import SdsServer
from gossamer.polling import wait_until
from gossamer.testing.ports import free_port
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET
from gossamer.types import spiffe_id

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

OWNER = "default/web"
WEB = spiffe_id("shop.local", "default", "web")
CLIENT = spiffe_id("shop.local", "default", "client")


async def _get(client: httpx.AsyncClient, url: str) -> tuple[int, int]:
    """(status, serial of the certificate the server presented on this connection)."""
    r = await client.get(url)
    ssl_object = r.extensions["network_stream"].get_extra_info("ssl_object")
    serial, _ = peer_certificate(ssl_object.getpeercert(binary_form=True))
    return r.status_code, serial


async def _served_serials(envoy: EnvoyProcess) -> set[int]:
    """The serials of the certificate chains Envoy's ``/certs`` lists."""
    certs = json.loads(await envoy.admin.get("/certs"))
    return {
        int(c["serial_number"], 16)
        for entry in certs.get("certificates", [])
        for c in entry.get("cert_chain", [])
    }


async def test_envoy_serves_the_sds_certificate_and_rotates_it_under_traffic(
    tmp_path: Path,
) -> None:
    ca = MeshCa.create(tmp_path / "ca")
    cache = SecretCache()
    cache.assign(PROXY.node_id, OWNER)
    chain, key, first = ca.issue(WEB)
    cache.put(OWNER, identity_secret(chain, key, f"{first:x}"), trust_bundle_secret(ca.pem))
    server = SdsServer(cache)
    socket = tmp_path / "sds.sock"
    await server.start(socket)
    assert stat.S_IMODE(os.stat(socket).st_mode) == 0o600
    port = free_port()
    url = f"https://127.0.0.1:{port}/"
    client_chain, client_key, _ = ca.issue(CLIENT)
    ctx = client_context(ca, client_chain, client_key, tmp_path)
    try:
        async with EnvoyProcess(tls_bootstrap(socket, port), name="web-1") as envoy:
            record = server.proxies[PROXY.node_id]
            # (each secret is its own SDS request: the two ACKs arrive in either order)
            await wait_until(
                lambda: (
                    record.acked.get(IDENTITY_SECRET) == f"{first:x}"
                    and TRUST_BUNDLE_SECRET in record.acked
                ),
                timeout=10,
                what="Envoy to ACK the first identity and the trust bundle",
            )
            assert record.acked[TRUST_BUNDLE_SECRET] == bundle_version(ca.pem)
            async with httpx.AsyncClient(verify=ctx, trust_env=False) as probe:
                r = await probe.get(url)
                ssl_object = r.extensions["network_stream"].get_extra_info("ssl_object")
                serial, uris = peer_certificate(ssl_object.getpeercert(binary_form=True))
            assert (r.status_code, r.text, serial, uris) == (200, "ok", first, [WEB])
            assert await _served_serials(envoy) == {first}

            # -- rotation under continuous traffic ---------------------------------------
            new_chain, new_key, second = ca.issue(WEB)
            total, pushed_after = 300, 100
            done = failures = 0
            pushed = asyncio.Event()
            push_time: float | None = None
            kept_serials: list[int] = []
            fresh_after_ack: list[int] = []

            async def traffic(client: httpx.AsyncClient, out: list[int], fresh: bool) -> None:
                nonlocal done, failures, push_time
                for _ in range(total // 2):
                    # (read before the request: a connection opened after the ACK)
                    acked = record.acked.get(IDENTITY_SECRET) == f"{second:x}"
                    try:
                        status, serial = await _get(client, url)
                    except httpx.HTTPError:
                        status, serial = 0, 0
                    failures += status != 200
                    done += 1
                    if acked or not fresh:
                        out.append(serial)
                    if done >= pushed_after and not pushed.is_set():
                        pushed.set()
                        push_time = time.monotonic()
                        cache.put(OWNER, identity_secret(new_chain, new_key, f"{second:x}"))

            keep = httpx.AsyncClient(
                verify=ctx, trust_env=False, limits=httpx.Limits(max_connections=1)
            )
            fresh = httpx.AsyncClient(verify=ctx, trust_env=False, headers={"Connection": "close"})
            async with keep, fresh:
                started = time.monotonic()
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(traffic(keep, kept_serials, fresh=False))
                    tg.create_task(traffic(fresh, fresh_after_ack, fresh=True))
                elapsed = time.monotonic() - started
            assert pushed.is_set() and push_time is not None
            assert (done, failures) == (total, 0)
            # the kept-alive connection was never dropped: it still shows the old certificate
            assert set(kept_serials) == {first}
            # every new connection after Envoy ACKed the rotation sees the new certificate
            assert fresh_after_ack and set(fresh_after_ack) == {second}
            assert record.acked[IDENTITY_SECRET] == f"{second:x}"
            assert record.error is None
            assert await _served_serials(envoy) == {second}
            print(
                f"rotation under traffic: {total} requests in {elapsed:.2f} s, 0 failed; "
                f"{len(fresh_after_ack)} new connections after the ACK saw the new serial"
            )
    finally:
        await server.stop()
    assert not socket.exists()
