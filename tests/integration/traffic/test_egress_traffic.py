"""Egress through real Envoy (issue 10): web-1's app reaches ExternalServices through its
sidecar at their stable local addresses — plain HTTP by host name (``localhost``, resolved by
Envoy's getaddrinfo resolver) and by address, with a Route's timeout and retries; ``https``
with the sidecar originating TLS (SNI and certificate checked; a wrong CA, no CA or a wrong
name is a 503 and Envoy's verification counters); ``tcp``; and ``tls`` passed through."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import httpx
import pytest
from egress_mesh import Egress, ScratchCa, TlsServer, egress, external

from gossamer.polling import wait_until
from gossamer.testing import HttpBackend, TcpEchoBackend
from gossamer.testing.mesh import route

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _served(e: Egress, url: str) -> None:
    async def ok() -> bool:
        try:
            return (await e.client.get(url)).status_code == 200
        except httpx.TransportError:
            return False

    await wait_until(ok, timeout=30, what=f"{url} answering through the sidecar")


async def test_http_by_host_name_and_by_address_with_route_rules(tmp_path: Path) -> None:
    async with (
        HttpBackend("by-name", "127.0.0.1") as named,
        HttpBackend("by-address", "127.0.0.3") as addressed,
    ):
        rules = [
            {
                "matches": [{"path": {"prefix": "/status"}}],
                "retries": {"attempts": 2, "retryOn": ["5xx"]},
                "headers": {"request": {"set": {"x-egress": "yes"}}},
                "destinations": [{"service": "weather"}],
            },
        ]
        async with egress(
            tmp_path,
            [
                external("weather", hosts=["localhost"], port=named.address[1], protocol="http"),
                external(
                    "ledger", addresses=["127.0.0.3"], port=addressed.address[1], protocol="http"
                ),
            ],
            [route("weather", "weather", rules)],
        ) as e:
            url = f"http://{e.local('weather')}:{named.address[1]}"
            await _served(e, url + "/hello")
            r = await e.client.get(url + "/hello")
            assert r.json()["backend"] == "by-name"
            headers = r.json()["headers"]
            assert headers["host"] == "localhost"  # not the local address the app dialled
            assert not [h for h in headers if h.startswith("x-envoy")]
            # the rule's retries: one request, three attempts, the rule's header on each
            before = named.requests_by_path["/status/503"]
            r = await e.client.get(url + "/status/503")
            assert r.status_code == 503
            assert named.requests_by_path["/status/503"] - before == 3
            assert named.seen[-1].headers["x-egress"] == "yes"

            by_ip = f"http://{e.local('ledger')}:{addressed.address[1]}/x"
            await _served(e, by_ip)
            assert (await e.client.get(by_ip)).json()["backend"] == "by-address"


async def test_a_rule_timeout_cuts_off_a_hung_external_server(tmp_path: Path) -> None:
    async with HttpBackend("slow", "127.0.0.1") as slow:
        rule = {
            "matches": [{"path": {"prefix": "/delay"}}],
            "timeout": "500ms",
            "destinations": [{"service": "slow-api"}],
        }
        port = slow.address[1]
        async with egress(
            tmp_path,
            [external("slow-api", hosts=["localhost"], port=port, protocol="http")],
            [route("slow-api", "slow-api", [rule])],
        ) as e:
            url = f"http://{e.local('slow-api')}:{port}"
            await _served(e, url + "/hello")
            started = time.monotonic()
            r = await e.client.get(url + "/delay/5000")
            assert r.status_code == 504, r.text
            assert time.monotonic() - started < 3
            assert await e.stat("cluster.outbound|default/slow-api|http.upstream_rq_timeout") == 1


async def test_https_originated_by_the_sidecar(tmp_path: Path) -> None:
    ca = ScratchCa("egress test ca", tmp_path)
    other = ScratchCa("another ca", tmp_path)
    async with TlsServer("secure", ca.server_context("localhost")) as server:
        port = server.address[1]
        externals = [
            external("pay", hosts=["localhost"], port=port, protocol="https", tls={"ca": ca.pem}),
            external(
                "wrong-ca", hosts=["localhost"], port=port, protocol="https", tls={"ca": other.pem}
            ),
            external("system-ca", hosts=["localhost"], port=port, protocol="https"),
            external(
                "wrong-name",
                addresses=["127.0.0.1"],
                port=port,
                protocol="https",
                tls={"ca": ca.pem, "sni": "pay.example.com"},
            ),
        ]
        async with egress(tmp_path, externals) as e:
            url = f"http://{e.local('pay')}:{port}/charge"
            await _served(e, url)
            r = await e.client.get(url)
            # the app spoke plain HTTP; the server got TLS with SNI and Host = the host name
            assert r.text == "secure GET /charge HTTP/1.1"
            assert r.headers["x-seen-host"] == "localhost"
            assert r.headers["x-envoy-headers"] == ""
            assert server.sni and set(server.sni) == {"localhost"}

            answered = len(server.hosts)
            for name, counter in (
                ("wrong-ca", "ssl.fail_verify_error"),
                ("system-ca", "ssl.fail_verify_error"),
                ("wrong-name", "ssl.fail_verify_san"),
            ):
                r = await e.client.get(f"http://{e.local(name)}:{port}/charge")
                assert r.status_code == 503, (name, r.text)
                assert "remote connection failure" in r.text, r.text
                assert await e.stat(f"cluster.outbound|default/{name}|https.{counter}") > 0, name
            assert len(server.hosts) == answered  # no request crossed a failed verification


async def test_tcp_and_tls_passthrough(tmp_path: Path) -> None:
    ca = ScratchCa("passthrough ca", tmp_path)
    async with (
        TcpEchoBackend("db-1", "127.0.0.4") as db,
        TlsServer("vault", ca.server_context("localhost"), http=False) as vault,
    ):
        externals = [
            external("db", addresses=["127.0.0.4"], port=db.address[1], protocol="tcp"),
            external("vault", hosts=["localhost"], port=vault.address[1], protocol="tls"),
        ]
        async with egress(tmp_path, externals) as e:
            db_local = (e.local("db"), db.address[1])

            async def greeted() -> bool:
                try:
                    async with asyncio.timeout(5):
                        reader, writer = await asyncio.open_connection(*db_local)
                        try:
                            return await reader.readline() == b"db-1\n"
                        finally:
                            writer.close()
                except (OSError, TimeoutError):
                    return False

            await wait_until(greeted, timeout=30, what="db through the sidecar")
            reader, writer = await asyncio.open_connection(*db_local)
            assert await reader.readline() == b"db-1\n"
            writer.write(b"ping\n")
            assert await reader.readline() == b"ping\n"
            writer.close()

            # the app speaks TLS itself, to the host name, through its local address
            vault_local = (e.local("vault"), vault.address[1])
            context = ca.client_context()

            async def handshake() -> bool:
                try:
                    async with asyncio.timeout(5):
                        reader, writer = await asyncio.open_connection(
                            *vault_local, ssl=context, server_hostname="localhost"
                        )
                        try:
                            return await reader.readline() == b"vault\n"
                        finally:
                            writer.close()
                except (OSError, TimeoutError, ssl.SSLError):
                    return False

            await wait_until(handshake, timeout=30, what="vault through the sidecar")
            reader, writer = await asyncio.open_connection(
                *vault_local, ssl=context, server_hostname="localhost"
            )
            assert await reader.readline() == b"vault\n"
            writer.write(b"secret\n")
            assert await reader.readline() == b"secret\n"
            writer.close()
            assert set(vault.sni) == {"localhost"}  # the app's own SNI, passed through
