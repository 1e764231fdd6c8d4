"""An identity provider's JWKS endpoint for tests: HTTPS on a loopback address, with a
throwaway CA of its own (``ca_pem``, what ``jwks.ca`` trusts), serving whatever ``keys``
holds now. ``start``/``stop`` it to play a provider that goes down and comes back on the
same address."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import ssl
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gossamer.ports import free_port

#: the longest request head read before the connection is dropped
_MAX_HEAD = 16_384


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=2))
    )


class JwksServer:
    """``https://<host>:<port>/jwks.json`` answering ``keys`` (503 while it is None)."""

    def __init__(self, keys: str | None, host: str = "127.0.0.9") -> None:
        self.keys = keys
        self.host = host
        self.port = free_port(host)
        #: GET requests answered so far
        self.asked = 0
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            _certificate("test identity provider root", ca_key, None)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        self.ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            _certificate(host, key, ca)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), False
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(ca_key, hashes.SHA256())
        )
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        with tempfile.TemporaryDirectory() as tmp:
            chain, private = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
            chain.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            private.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            self._context.load_cert_chain(chain, private)
        self._server: asyncio.Server | None = None

    @property
    def uri(self) -> str:
        return f"https://{self.host}:{self.port}/jwks.json"

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, self.host, self.port, ssl=self._context, reuse_address=True
        )

    async def stop(self) -> None:
        """Down: connections to it are refused until ``start``."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > _MAX_HEAD:
                return
            if head.split(b" ", 2)[:2] != [b"GET", b"/jwks.json"]:
                status, body = "404 Not Found", b"not here\n"
            elif self.keys is None:
                status, body = "503 Service Unavailable", b"no keys\n"
            else:
                status, body = "200 OK", self.keys.encode()
            self.asked += 1
            writer.write(
                f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()
