"""tcp and tls ExternalServices through an egress gateway holding a mesh identity, in a
STRICT mesh, all real (``egress_identity_mesh``): web's agent-run sidecar -> the gateway's
Envoy (``gossamer gateway`` with a token) -> the external server on loopback.

- ``tcp``: a TCP echo that greets first; bytes cross both hops, the sidecar -> gateway hop
  over mTLS (handshakes counted on web's cluster and on the gateway's egress listener).
- ``tls``: passthrough: web's app does its own TLS with the external server, verifying the
  server's certificate (of a CA of its own, not the mesh's) and sending its own SNI.
- a plaintext client straight to the gateway's egress listener gets nothing, and the
  external server sees no connection from it.
- the caller check: a client holding a valid mesh certificate of a service that does not
  depend on the external service is refused at the gateway (``rbac.denied``; a 403 for
  http), while web, which depends on it, passes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path

import httpx
import pytest
from egress_identity_mesh import GATEWAY_ADDRESS, EgressIdentityMesh, egress_identity_mesh, external
from egress_mesh import ScratchCa, TlsServer
from tests.integration.agent.test_strict_refusals import http_over_tls

from gossamer.polling import wait_until
from gossamer.testing import HttpBackend, TcpEchoBackend, free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(300)]

CONNECTIONS = 3


async def exchange(
    address: tuple[str, int],
    payload: bytes,
    want: int,
    *,
    tls: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> bytes:
    """Connect, send ``payload``, read until ``want`` bytes came or the peer closed; what
    came back (b"" when refused). With ``tls`` the handshake is with whoever answers."""
    got = b""
    try:
        async with asyncio.timeout(10):
            reader, writer = await asyncio.open_connection(
                *address, ssl=tls, server_hostname=server_hostname if tls else None
            )
            try:
                writer.write(payload)
                await writer.drain()
                while len(got) < want and (chunk := await reader.read(65536)):
                    got += chunk
            finally:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
    except (OSError, ssl.SSLError, TimeoutError):
        pass
    return got


async def stat(e: EgressIdentityMesh, name: str) -> int:
    return (await e.gateway_stats(f"^{name.replace('|', '[|]')}$")).get(name, 0)


async def test_tcp_and_tls_through_the_gateway_over_mtls_and_only_for_callers(
    tmp_path: Path,
) -> None:
    ca = ScratchCa("vault ca", tmp_path)
    ledger_port, vault_port, pay_port = (free_port(GATEWAY_ADDRESS) for _ in range(3))
    async with (
        TcpEchoBackend("ledger-db", "127.0.0.4") as db,
        TlsServer("vault", ca.server_context("localhost"), http=False) as vault,
        HttpBackend("pay-api", "127.0.0.4") as pay,
    ):
        externals = [
            external("ledger", ledger_port, addresses=["127.0.0.4"], port=db.address[1],
                     protocol="tcp"),
            external("vault", vault_port, hosts=["localhost"], port=vault.address[1],
                     protocol="tls"),
            external("pay", pay_port, addresses=["127.0.0.4"], port=pay.address[1],
                     protocol="http"),
        ]  # fmt: skip
        async with egress_identity_mesh(tmp_path, externals) as e:
            ledger = e.local("ledger", db.address[1])
            hello = db.greeting + b"first\n"

            async def echoed() -> bool:
                return await exchange(ledger, b"first\n", len(hello)) == hello

            await wait_until(echoed, timeout=90, what="ledger through the egress gateway")

            # tcp: bytes both ways, each connection one mTLS handshake on each hop's end
            caller_hs = r"^cluster\.outbound\|default/ledger\|tcp\.ssl\.handshake$"
            before_caller = sum((await e.web_stats(caller_hs)).values())
            before_gw = await e.listener_handshakes(ledger_port)
            allowed = "egress_callers|default/ledger.rbac.allowed"
            before_allowed = await stat(e, allowed)
            served = len(db.received)
            for i in range(CONNECTIONS):
                payload = f"over mtls {i}\n".encode() * 50
                want = db.greeting + payload
                assert await exchange(ledger, payload, len(want)) == want
            caller = sum((await e.web_stats(caller_hs)).values()) - before_caller
            gateway = await e.listener_handshakes(ledger_port) - before_gw
            passed = await stat(e, allowed) - before_allowed
            print(f"{CONNECTIONS} tcp connections: handshakes caller {caller} gateway {gateway}")
            assert (caller, gateway, passed) == (CONNECTIONS, CONNECTIONS, CONNECTIONS)
            assert len(db.received) - served == CONNECTIONS

            # tls passthrough: the app's own TLS, verified against the server's own CA
            vault_local = e.local("vault", vault.address[1])
            vault_hello = b"vault\nsecret\n"

            async def vault_answers() -> bool:
                got = await exchange(
                    vault_local, b"secret\n", len(vault_hello),
                    tls=ca.client_context(), server_hostname="localhost",
                )  # fmt: skip
                return got == vault_hello

            await wait_until(vault_answers, timeout=60, what="vault through the egress gateway")
            _, writer = await asyncio.open_connection(
                *vault_local, ssl=ca.client_context(), server_hostname="localhost"
            )
            cert = writer.get_extra_info("peercert")
            writer.close()
            issuer = dict(x[0] for x in cert["issuer"])
            assert issuer == {"commonName": "vault ca"}, cert  # the server's, not the mesh's
            assert set(vault.sni) == {"localhost"}
            assert await e.listener_handshakes(vault_port) > 0  # mesh mTLS around it

            # plaintext straight to the gateway's egress listener: refused before anything
            # goes out (its TCP proxy connects only after a handshake)
            connections = db.connections
            plain = await exchange((GATEWAY_ADDRESS, ledger_port), b"plain\n", 100)
            assert db.greeting not in plain, plain  # (a TLS alert at most)
            assert db.connections == connections

            # a valid mesh certificate of a service that does not depend on ledger: the
            # handshake passes, the caller check closes the connection on its first byte
            denied = "egress_callers|default/ledger.rbac.denied"
            before_denied, served = await stat(e, denied), len(db.received)
            stranger = e.intruder("stranger")
            got = await exchange((GATEWAY_ADDRESS, ledger_port), b"let me in\n", 100, tls=stranger)
            print(f"a non-caller's connection to ledger got {got!r}")
            assert b"let me in" not in got
            assert await stat(e, denied) - before_denied == 1
            assert db.received[served:] == []  # its bytes never left the gateway
            # tls: refused on its first byte (the ClientHello); the server sees no handshake
            sni = len(vault.sni)
            got = await exchange(
                (GATEWAY_ADDRESS, vault_port), b"\x16\x03\x01hello", 1, tls=stranger
            )
            assert got == b""
            assert await stat(e, "egress_callers|default/vault.rbac.denied") == 1
            assert len(vault.sni) == sni

            # http: web passes, the stranger gets the gateway's 403
            pay_local = e.local("pay", pay.address[1])
            url = f"http://{pay_local[0]}:{pay_local[1]}/charge"
            async with httpx.AsyncClient(timeout=10, trust_env=False) as client:

                async def paid() -> bool:
                    try:
                        return (await client.get(url)).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_until(paid, timeout=60, what="pay through the egress gateway")
            before = pay.requests_by_path["/charge"]
            answer = await http_over_tls(f"{GATEWAY_ADDRESS}:{pay_port}", stranger, "/charge")
            assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
            assert b"egress-callers:default/pay" in answer
            assert pay.requests_by_path["/charge"] == before
            assert await stat(e, "http.egress|default/pay.rbac.denied") == 1
