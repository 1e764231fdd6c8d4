"""The control plane's xDS identity: its server certificate from the mesh CA (renewed at
half-life and whenever the trust domain or trust bundle changes, applied to new handshakes
without a restart), and the check of who may subscribe as which proxy.

The certificate's URI SAN is ``spiffe://<td>/gossamer/control-plane``
(``translate.bootstrap.control_plane_id``), which agent-run Envoys verify; DNS and IP SANs
for the listen address let gRPC clients verify it by address too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Mapping
from datetime import UTC, datetime

from gossamer.ca.authority import CertificateAuthority, IPAddress
from gossamer.ca.keys import key_pem, new_key
from gossamer.controlplane.plane import ControlPlane
from gossamer.model.base import Resource
from gossamer.translate.bootstrap import control_plane_id
from gossamer.types import OWNER_LABEL, ProxyIdentity, ResourceKey
from gossamer.xds.auth import Peer, Registration, Verdict, XdsTlsMode, check_node
from gossamer.xds.server import Authorizer
from gossamer.xds.tls import ServerCertificate, ServerCredentials

log = logging.getLogger(__name__)

#: renew the xDS server certificate once this share of its lifetime has passed
RENEW_AT = 0.5


def server_names(host: str) -> tuple[list[str], list[IPAddress]]:
    """DNS and IP SANs for an xDS server listening on ``host``: the host itself, and for a
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


class XdsCertificate:
    """The xDS server's certificate, kept fresh: ``await open()``, then ``run()``."""

    def __init__(self, plane: ControlPlane, ca: CertificateAuthority, host: str) -> None:
        self._plane = plane
        self._ca = ca
        self._names = server_names(host)
        self._changed = asyncio.Event()
        self.credentials: ServerCredentials | None = None

    async def open(self) -> ServerCredentials:
        """Issue the first certificate; follow Mesh changes from now on."""
        self.credentials = ServerCredentials(await asyncio.to_thread(self._issue))
        self._plane.add_listener({"Mesh"}, self._mesh_changed)
        return self.credentials

    def _mesh_changed(self, changes: Mapping[ResourceKey, Resource | None], revision: int) -> None:
        self._changed.set()

    def _issue(self) -> ServerCertificate:
        model = self._plane.model
        assert model is not None, "load the control plane before the xDS certificate"
        key = new_key()
        dns, ips = self._names
        uri = control_plane_id(self._ca.trust_domain)
        bundle = self._ca.trust_bundle_pem()
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
        """Was ``cert`` issued for another trust domain or trust bundle than now's?"""
        return (cert.spiffe_id, cert.trust_bundle_pem) != (
            control_plane_id(self._ca.trust_domain),
            self._ca.trust_bundle_pem(),
        )

    async def run(self) -> None:
        """Renew at ``RENEW_AT`` of the lifetime, or at once when the Mesh changed the trust
        domain (or the bundle changed); a failed renewal is retried after a minute while
        the current certificate serves."""
        assert self.credentials is not None, "open() first"
        while True:
            cert = self.credentials.current
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
                log.exception("could not renew the xDS server certificate; retrying in 60 s")
                await asyncio.sleep(60)
                continue
            self.credentials.update(fresh)
            log.info("xDS server certificate renewed (serial %x)", fresh.serial)


def registrations(plane: ControlPlane, proxy: ProxyIdentity) -> Registration | None:
    """Who registered ``proxy`` (a sidecar: its Workload's agent) and what it serves; None
    for a gateway (gateways have no credential yet) or a Workload no agent registered."""
    model = plane.model
    if model is None or proxy.kind != "sidecar":
        return None
    workload = model.workloads.get((proxy.namespace, proxy.name))
    if workload is None:
        return None
    holder = workload.metadata.labels.get(OWNER_LABEL)
    if holder is None:
        return None
    return Registration(holder, workload.metadata.namespace, workload.spec.service)


def xds_authorizer(plane: ControlPlane, ca: CertificateAuthority, mode: XdsTlsMode) -> Authorizer:
    """``check_node`` over the plane's model and the CA's issuance record."""
    warned: set[int] = set()

    def authorize(proxy: ProxyIdentity, peer: Peer) -> Verdict:
        verdict = check_node(
            proxy,
            peer,
            mode=mode,
            registration=lambda p: registrations(plane, p),
            holder_of=ca.holders.holder_of,
            recorded_since=ca.holders.started,
        )
        if verdict.holder_unknown and peer.serial is not None and peer.serial not in warned:
            warned.add(peer.serial)
            log.warning(
                "%s subscribes as %s with a certificate issued before this control plane "
                "started: checked its identity only, until its agent renews it",
                peer.describe(),
                proxy.node_id,
            )
        return verdict

    return authorize
