"""Egress test kit: a caller sidecar (``web-1``'s real Envoy, fed by a real control plane)
whose dependencies are ExternalServices, a test CA issuing server certificates, and TLS
servers on loopback that record the SNI and ``Host`` they were sent."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import apply_manifests, free_port, mesh_envoy
from gossamer.testing.controlplane import running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

CLIENT = "127.0.0.2"
WEB = ProxyIdentity("sidecar", "default", "web-1")


def external(name: str, **spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "ExternalService",
        "metadata": {"name": name},
        "spec": spec,
    }


class ScratchCa:
    """A throwaway CA: ``pem`` to trust, ``server_context(host)`` for a server of ``host``."""

    def __init__(self, name: str, workdir: Path) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM).decode()
        self._dir = workdir / name.replace(" ", "-")
        self._dir.mkdir(parents=True, exist_ok=True)

    def server_context(self, host: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        cert_file, key_file = self._dir / f"{host}.pem", self._dir / f"{host}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert_file, key_file)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.pem)


@dataclass
class TlsServer:
    """A TLS server on ``host``: ``http`` mode answers one HTTP/1.1 request per connection
    (200, ``x-seen-host``: the Host it got); otherwise it greets ``<name>\\n`` and echoes."""

    name: str
    context: ssl.SSLContext
    host: str = "127.0.0.1"
    http: bool = True
    #: the SNI of every handshake (None: none sent)
    sni: list[str | None] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    address: tuple[str, int] = ("", 0)
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        def on_sni(_obj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
            self.sni.append(name)

        self.context.sni_callback = on_sni  # type: ignore[assignment]
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.context)
        self.address = self._server.sockets[0].getsockname()[:2]
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(30):
                if self.http:
                    await self._answer(reader, writer)
                else:
                    writer.write(f"{self.name}\n".encode())
                    while data := await reader.read(65536):
                        writer.write(data)
                        await writer.drain()
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(
            (k.strip().lower(), v.strip()) for k, _, v in (h.partition(":") for h in lines[1:] if h)
        )
        host = headers.get("host", "")
        self.hosts.append(host)
        body = f"{self.name} {lines[0]}".encode()
        envoy = [k for k in headers if k.startswith("x-envoy")]
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n"
            + f"x-backend: {self.name}\r\nx-seen-host: {host}\r\n".encode()
            + f"x-envoy-headers: {','.join(envoy)}\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()


@dataclass
class Egress:
    app: ControlPlaneApp
    envoy: EnvoyProcess
    client: httpx.AsyncClient

    def local(self, name: str) -> str:
        """The stable local address of ExternalService ``name`` (as ``agent env`` says)."""
        assert self.app.plane.model is not None
        return self.app.plane.model.local_addresses[("default", name)]

    async def stat(self, name: str) -> int:
        return (await self.envoy.stats(f"^{name.replace('|', '[|]')}$")).get(name, 0)


@asynccontextmanager
async def egress(
    tmp_path: Path, externals: list[Manifest], more: Sequence[Manifest] = ()
) -> AsyncIterator[Egress]:
    """A control plane and web-1's Envoy, web-1 depending on every one of ``externals``."""
    deps = [{"service": e["metadata"]["name"]} for e in externals]
    async with running_control_plane(tmp_path) as app:
        manifests = [
            service("web"),
            *externals,
            *more,
            workload("web-1", "web", CLIENT, free_port(CLIENT), 1, dependencies=deps),
        ]
        await apply_manifests(app, manifests, wait=False)
        async with (
            mesh_envoy(app, WEB) as envoy,
            httpx.AsyncClient(timeout=20, trust_env=False) as client,
        ):
            yield Egress(app, envoy, client)
