"""A renewed API certificate replaces the TLS context whole (``ApiServer.use_tls``).

Reloading one ``SSLContext`` in place from a worker thread while the event loop starts
handshakes on it let a handshake see the new chain with the old key (and crashed the
interpreter in a plain-``ssl`` reproduction); a fresh context per certificate, swapped by
reference, cannot be half-loaded.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.unit.server.test_http_server import FAST, serving


def self_signed(directory: Path, name: str) -> tuple[Path, Path, int]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    chain, key_file = directory / f"{name}.pem", directory / f"{name}-key.pem"
    chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return chain, key_file, cert.serial_number


def server_context(chain: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key)
    return context


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # (the test reads the certificate itself)
    return context


async def served_serial(address: tuple[str, int]) -> int:
    """One HTTPS request on a new connection: the serial of the certificate it saw."""
    reader, writer = await asyncio.open_connection(*address, ssl=client_context())
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    async with asyncio.timeout(5):
        answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    return x509.load_der_x509_certificate(der).serial_number


@pytest.mark.asyncio
async def test_new_connections_get_the_swapped_certificate(tmp_path: Path) -> None:
    first, second = self_signed(tmp_path, "first"), self_signed(tmp_path, "second")
    async with serving(FAST) as (address, server):
        server.use_tls(server_context(*first[:2]))
        assert await served_serial(address) == first[2]
        server.use_tls(server_context(*second[:2]))
        assert await served_serial(address) == second[2]


@pytest.mark.slow
@pytest.mark.asyncio
async def test_renewals_during_handshakes_fail_no_request(tmp_path: Path) -> None:
    pairs = [self_signed(tmp_path, f"c{i}")[:2] for i in range(2)]
    async with serving(FAST) as (address, server):
        server.use_tls(server_context(*pairs[0]))
        done = threading.Event()

        def renew() -> None:
            i = 0
            while not done.is_set() and i < 2_000:  # bounded
                server.use_tls(server_context(*pairs[i % 2]))
                i += 1

        renewing = asyncio.create_task(asyncio.to_thread(renew))
        try:
            serials = [await served_serial(address) for _ in range(120)]
        finally:
            done.set()
            await renewing
        assert len(serials) == 120
