"""The control plane's own server certificate, from the mesh CA, shared by the REST API
(TLS) and xDS (mTLS): issued at start, renewed at half its life and at once when the trust
domain or the trust bundle changes, and handed to both servers without a restart.

Its URI SAN is ``spiffe://<td>/gossamer/control-plane`` (``translate.bootstrap.
control_plane_id``), which agent-run Envoys verify; its DNS and IP SANs name the listen
addresses (``server_names``) and each ``--api-host``, which API clients check the way
browsers do. Workload certificates carry only a URI SAN, so none of them can pass for the
control plane to a client that checks the name.

``pin`` is the fingerprint of the root the certificate chains to: new join and operator
tokens carry it (``gossamer.ca.trust``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from gossamer.ca.authority import CertificateAuthority, IPAddress
from gossamer.ca.keys import key_pem, new_key
from gossamer.ca.trust import fingerprint, issuing_root
from gossamer.controlplane.plane import ControlPlane
from gossamer.model.base import Resource
from gossamer.translate.bootstrap import control_plane_id
from gossamer.types import ResourceKey
from gossamer.xds.tls import ServerCertificate

log = logging.getLogger(__name__)

#: renew the server certificate once this share of its lifetime has passed
RENEW_AT = 0.5


def server_names(host: str) -> tuple[list[str], list[IPAddress]]:
    """DNS and IP SANs for a server listening on ``host``: the host itself, and for a
    wildcard address this machine's name and the loopback addresses."""
    dns: list[str] = []
    ips: list[IPAddress] = []
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        dns.append(host)
    else:
        if ip.is_unspecified:
            dns += [socket.gethostname(), "localhost"]
            ips += [ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")]
        else:
            ips.append(ip)
    return dns, ips


def all_names(hosts: Iterable[str]) -> tuple[list[str], list[IPAddress]]:
    """``server_names`` of every host, each name once, in order."""
    dns: dict[str, None] = {}
    ips: dict[IPAddress, None] = {}
    for host in hosts:
        d, i = server_names(host)
        dns.update(dict.fromkeys(n.lower() for n in d))
        ips.update(dict.fromkeys(i))
    return list(dns), list(ips)


Renewed = Callable[[ServerCertificate], None]


class ServerCertificateKeeper:
    """``await open()``, then ``run()``; ``subscribe`` to get each renewed certificate."""

    def __init__(self, plane: ControlPlane, ca: CertificateAuthority, hosts: Iterable[str]) -> None:
        self._plane = plane
        self._ca = ca
        self._names = all_names(hosts)
        self._changed = asyncio.Event()
        self._subscribers: list[Renewed] = []
        self._current: ServerCertificate | None = None
        #: the CA's version the current certificate was issued under (``_stale``)
        self._ca_version = ""

    @property
    def current(self) -> ServerCertificate:
        assert self._current is not None, "open() first"
        return self._current

    @property
    def pin(self) -> str | None:
        """The fingerprint of the root the current certificate chains to."""
        cert = self.current
        root = issuing_root(cert.chain_pem, cert.trust_bundle_pem)
        return fingerprint(root) if root is not None else None

    def subscribe(self, renewed: Renewed) -> None:
        self._subscribers.append(renewed)

    async def open(self) -> ServerCertificate:
        """Issue the first certificate; follow Mesh changes from now on."""
        self._current = await asyncio.to_thread(self._issue)
        self._plane.add_listener({"Mesh"}, self._mesh_changed)
        self._ca.add_listener(self.renew_soon)  # (a root rotation's phases)
        return self._current

    def renew_soon(self) -> None:
        """Check now whether the certificate is stale (a new trust bundle) and renew it."""
        self._changed.set()

    def _mesh_changed(self, changes: Mapping[ResourceKey, Resource | None], revision: int) -> None:
        self._changed.set()

    def _issue(self) -> ServerCertificate:
        model = self._plane.model
        assert model is not None, "load the control plane before its server certificate"
        key = new_key()
        dns, ips = self._names
        uri = control_plane_id(self._ca.trust_domain)
        bundle = self._ca.trust_bundle_pem()
        self._ca_version = self._ca.version
        now = datetime.now(UTC)
        issued = self._ca.sign_server(
            key.public_key(),
            uri=uri,
            dns_names=dns,
            ip_addresses=ips,
            ttl=model.mesh.spec.mtls.certificateTTL,
        )
        return ServerCertificate(
            key_pem(key), issued.chain_pem, bundle, now, issued.not_after, issued.serial, uri
        )

    def _stale(self, cert: ServerCertificate) -> bool:
        """Was ``cert`` issued for another trust domain or trust bundle than now's, or
        before the CA changed what it signs with (a root rotation)?"""
        return (cert.spiffe_id, cert.trust_bundle_pem, self._ca_version) != (
            control_plane_id(self._ca.trust_domain),
            self._ca.trust_bundle_pem(),
            self._ca.version,
        )

    async def run(self) -> None:
        """Renew at ``RENEW_AT`` of the lifetime, or at once when the Mesh changed the trust
        domain (or the bundle changed); a failed renewal is retried after a minute while
        the current certificate serves."""
        while True:
            cert = self.current
            due = cert.not_before + (cert.not_after - cert.not_before) * RENEW_AT
            delay = max(0.0, (due - datetime.now(UTC)).total_seconds())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._changed.wait()
            self._changed.clear()
            if datetime.now(UTC) < due and not self._stale(cert):
                continue
            try:
                fresh = await asyncio.to_thread(self._issue)
            except Exception:
                log.exception("could not renew the control plane's certificate; retrying in 60 s")
                await asyncio.sleep(60)
                continue
            self._current = fresh
            for renewed in self._subscribers:
                try:
                    await asyncio.to_thread(renewed, fresh)  # files, locks
                except Exception:
                    log.exception("a server did not take the renewed certificate")
            log.info("the control plane's server certificate was renewed (serial %x)", fresh.serial)


def api_ssl_context(cert: ServerCertificate) -> ssl.SSLContext:
    """A server context for the REST API holding ``cert`` (TLS 1.2+, no client
    certificate asked: API clients prove themselves with a token)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    load_certificate(context, cert)
    return context


def load_certificate(context: ssl.SSLContext, cert: ServerCertificate) -> None:
    """Put ``cert`` into ``context``: new handshakes present it, open connections keep
    theirs. ``load_cert_chain`` reads files only: the key is written to a private
    temporary directory and removed at once."""
    with tempfile.TemporaryDirectory(prefix="gossamer-api-tls-") as tmp:
        chain, key = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
        for path, data in ((chain, cert.chain_pem), (key, cert.key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        context.load_cert_chain(chain, key)
