"""The REST API over TLS with the mesh CA's certificate, and clients that verify the server
before sending any secret (issue 9, "The API is served over TLS").

A real control plane (uvicorn behind ``ApiServer``) on loopback, and an impostor: a TLS
server on loopback that records every byte it receives in the clear, with a certificate
from another CA. A token pinned to the real CA's root is never sent to the impostor,
whether it offers its own roots or copies the real (public) trust bundle.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from gossamer.agent.client import RegistryClient
from gossamer.agent.connect import join_control_plane, open_registry, xds_target
from gossamer.ca.authority import CertificateAuthority
from gossamer.ca.keys import key_pem, new_key
from gossamer.ca.trust import TRUST_BUNDLE_PATH, token_fingerprint, token_secret
from gossamer.cli.client import ApiClient
from gossamer.errors import RejectedError, UntrustedServerError
from gossamer.model.internal import HostScope
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import (
    admin_token,
    api_client,
    api_verify,
    apply_yaml,
    ca_file,
    running_control_plane,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


@dataclass
class Impostor:
    """A TLS server on 127.0.0.1 with another CA's certificate, recording what it gets."""

    bundle_pem: bytes
    url: str = ""
    received: bytearray = field(default_factory=bytearray)
    handshakes_failed: int = 0


@asynccontextmanager
async def impostor(tmp_path: Path, serve_bundle: bytes | None = None) -> AsyncIterator[Impostor]:
    """Its ``/trust-bundle`` answers ``serve_bundle`` (default: its own root); anything
    else answers ``{}``."""
    other = CertificateAuthority.load_or_create(tmp_path / "other-ca", "evil.local")
    key = new_key()
    issued = other.sign_server(
        key.public_key(),
        uri="spiffe://evil.local/gossamer/control-plane",
        ip_addresses=[ipaddress.ip_address("127.0.0.1")],
        ttl=timedelta(hours=1),
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "c.pem").write_bytes(issued.chain_pem)
        (Path(tmp) / "k.pem").write_bytes(key_pem(key))
        context.load_cert_chain(Path(tmp) / "c.pem", Path(tmp) / "k.pem")
    fake = Impostor(serve_bundle or other.trust_bundle_pem())

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            fake.received += head
            length = next(
                (int(v) for k, _, v in (ln.partition(b":") for ln in head.split(b"\r\n"))
                 if k.strip().lower() == b"content-length"),
                0,
            )  # fmt: skip
            fake.received += await reader.readexactly(length)
            asked = head.split(b"\r\n")[0]
            body = fake.bundle_pem if TRUST_BUNDLE_PATH.encode() in asked else b"{}"
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                % (len(body), body)
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            fake.handshakes_failed += 1
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    fake.url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield fake


async def join_token(app: ControlPlaneApp) -> str:
    token, _ = await app.agents.create_token(scope=HostScope(services=["web"]))
    return token


async def test_tokens_carry_the_roots_fingerprint_and_a_cli_with_it_is_served(
    tmp_path: Path,
) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        assert app.api_url.startswith("https://")
        admin = admin_token(tmp_path / "cp")
        pin = token_fingerprint(admin)
        assert app.certificate is not None and pin is not None and pin == app.certificate.pin
        assert token_fingerprint(await join_token(app)) == pin

        def cli() -> int:
            with ApiClient(app.api_url, token=admin) as api:
                return len(api.proxies())

        assert await asyncio.to_thread(cli) == 0

        # --ca-file instead of the pin: a bare secret is verified that way
        def with_ca_file() -> int:
            with ApiClient(app.api_url, token=token_secret(admin), ca_file=str(ca_file(app))) as a:
                return len(a.proxies())

        assert await asyncio.to_thread(with_ca_file) == 0


@pytest.mark.parametrize("copies_the_real_bundle", [False, True])
async def test_a_server_of_another_ca_never_gets_the_token(
    tmp_path: Path, copies_the_real_bundle: bool
) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        admin = admin_token(tmp_path / "cp")
        joining = await join_token(app)
        real = app.trust_bundle_pem() if copies_the_real_bundle else None
        async with impostor(tmp_path, real) as fake:

            def cli() -> None:
                with ApiClient(fake.url, token=admin) as api:
                    api.proxies()

            with pytest.raises(UntrustedServerError, match="nothing secret was sent"):
                await asyncio.to_thread(cli)
            async with RegistryClient(fake.url) as client:
                with pytest.raises(UntrustedServerError, match="nothing"):
                    await client.join(joining, "vm-1")
            with pytest.raises(UntrustedServerError):
                await join_control_plane(fake.url, joining, "vm-1")

        sent = bytes(fake.received)
        for secret in (admin, joining, token_secret(admin), token_secret(joining)):
            assert secret.encode() not in sent
        assert b"authorization" not in sent.lower()
        # it was asked for its (public) roots, and nothing else: with its own roots the
        # fingerprint did not match; with the real ones its certificate did not verify
        lines = [ln for ln in sent.split(b"\r\n") if b"HTTP/1.1" in ln]
        assert lines and all(ln == b"GET /trust-bundle HTTP/1.1" for ln in lines), lines
        # the real control plane still takes the join token: it was never used
        async with RegistryClient(app.api_url) as client:
            assert (await client.join(joining, "vm-1")).agent_id


async def test_plain_http_to_the_tls_api_is_told_to_use_https(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        plain = app.api_url.replace("https://", "http://")
        async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
            r = await c.get(f"{plain}/healthz")
        assert r.status_code == 400 and "serves HTTPS only" in r.text, r.text

        def cli() -> None:
            with ApiClient(plain, token=admin_token(tmp_path / "cp")) as api:
                api.proxies()

        with pytest.raises(RejectedError, match="use https://"):
            await asyncio.to_thread(cli)
        # the API still serves TLS clients after plaintext ones
        async with api_client(app) as c:
            assert (await c.get("/healthz")).status_code == 200


async def test_a_joined_host_keeps_the_roots_and_verifies_every_later_call(
    tmp_path: Path,
) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        cred = await join_control_plane(app.api_url, await join_token(app), "vm-1")
        assert cred.trust_bundle.encode() == app.trust_bundle_pem()
        assert xds_target(cred).tls and xds_target(cred).addresses == (app.xds_tls_addr,)
        assert cred.xds == f"127.0.0.1:{app.xds_addr[1]}"
        async with open_registry(cred) as api:
            assert await api.env() == {}
        # the same credential with another CA's roots: refused, the credential not sent
        async with impostor(tmp_path) as fake:
            other = fake.bundle_pem.decode()
        forged = type(cred)(**{**cred.__dict__, "trust_bundle": other})
        async with open_registry(forged) as api:
            with pytest.raises(UntrustedServerError, match="failed verification"):
                await api.env()


def _serial(url: str, verify: ssl.SSLContext) -> tuple[int, str]:
    host, port = url.removeprefix("https://").rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        verify.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return cert.serial_number, uris.get_values_for_type(x509.UniformResourceIdentifier)[0]


async def test_the_api_certificate_is_renewed_without_a_restart(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app) as kept:
        verify = api_verify(app)
        before, uri = await asyncio.to_thread(_serial, app.api_url, verify)
        assert uri == "spiffe://gossamer.local/gossamer/control-plane"
        assert (await kept.get("/healthz")).status_code == 200  # a kept-alive connection
        await apply_yaml(
            app,
            "apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {name: default}\n"
            "spec: {trustDomain: shop.local}\n",
            wait=False,
        )

        async def renewed() -> tuple[int, str] | None:
            now = await asyncio.to_thread(_serial, app.api_url, verify)
            return now if now[0] != before else None

        _, uri = await wait_until(renewed, timeout=30, what="a renewed API certificate")
        assert uri == "spiffe://shop.local/gossamer/control-plane"
        # the connection opened before the renewal keeps serving, and new clients are served
        assert (await kept.get("/healthz")).status_code == 200
        async with api_client(app) as fresh:
            assert (await fresh.get("/v1/proxies")).status_code == 200


async def test_admin_token_is_repinned_at_start(tmp_path: Path) -> None:
    """An admin.token written before fingerprints (a bare secret) gets the current pin at
    the next start, with the same secret; the CLI then verifies with it."""
    data = tmp_path / "cp"
    async with running_control_plane(data):
        pinned = admin_token(data)
    (data / "admin.token").write_text(token_secret(pinned) + "\n")
    async with running_control_plane(data) as app:
        assert admin_token(data) == pinned

        def cli() -> int:
            with ApiClient(app.api_url, token=admin_token(data)) as api:
                return len(api.proxies())

        assert await asyncio.to_thread(cli) == 0
