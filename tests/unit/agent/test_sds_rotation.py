"""One service's identity on the host: a key made here, a certificate from the real CA over
a CSR, kept 0600, renewed at about half its lifetime; a control plane without a CA (404)
leaves the workloads plaintext and is told once."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from gossamer.agent.identity.rotation import Identity, ServiceIdentity, load_identity
from gossamer.agent.replies import IssuedCertificate
from gossamer.agent.status import IdentityStatus
from gossamer.ca.authority import CertificateAuthority
from gossamer.errors import RejectedError, ServerError
from gossamer.polling import wait_until
from gossamer.types import spiffe_id

pytestmark = pytest.mark.asyncio

SERVICE = "default/web"
WEB = spiffe_id("shop.local", "default", "web")


class Plane:
    """The control plane's side of ``POST .../certificates`` with a real CA."""

    def __init__(self, directory: Path, ttl: timedelta = timedelta(minutes=10)) -> None:
        self.ca = CertificateAuthority.load_or_create(directory, "shop.local")
        self.ttl = ttl
        self.csrs: list[bytes] = []

    async def request(self, service: str, csr: bytes) -> IssuedCertificate:
        assert service == SERVICE
        self.csrs.append(csr)
        issued = self.ca.sign(csr, spiffe_id=WEB, ttl=self.ttl)
        return IssuedCertificate(
            issued.chain_pem, self.ca.trust_bundle_pem(), issued.not_after, f"{issued.serial:x}"
        )


def _identity(
    plane: Plane, keep: Path | None, published: list[Identity], status: IdentityStatus
) -> ServiceIdentity:
    return ServiceIdentity(
        SERVICE,
        request=plane.request,
        publish=published.append,
        status=status,
        changed=lambda: None,
        keep=keep,
        rng=random.Random(7),
    )


async def test_a_renewal_serves_a_certificate_for_the_hosts_own_key(tmp_path: Path) -> None:
    plane, published, status = Plane(tmp_path / "ca"), [], IdentityStatus()
    keep = tmp_path / "web.json"
    before = datetime.now(UTC)
    identity = await _identity(plane, keep, published, status).renew()
    assert published == [identity]
    assert identity.spiffe_id == WEB
    leaf = x509.load_pem_x509_certificate(identity.chain_pem)
    assert format(leaf.serial_number, "x") == identity.serial == status.serial
    # the CSR asked for no name (the server derives it) and the key never left the host
    csr = x509.load_pem_x509_csr(plane.csrs[0])
    assert not list(csr.extensions)
    assert identity.key_pem not in plane.csrs[0]
    # renewal at about half the lifetime left (0.5 +- 0.05)
    assert status.renew_at is not None and status.state == "issued"
    left = (identity.not_after - before).total_seconds()
    at = (datetime.fromisoformat(status.renew_at) - before).total_seconds()
    assert 0.44 * left <= at <= 0.56 * left
    # kept 0600, and a restarted agent serves it again
    assert stat.S_IMODE(os.stat(keep).st_mode) == 0o600
    assert load_identity(keep, datetime.now(UTC)) == identity
    assert load_identity(keep, identity.not_after + timedelta(seconds=1)) is None  # expired


async def test_the_loop_serves_the_kept_certificate_at_once_then_renews(tmp_path: Path) -> None:
    plane, published, status = Plane(tmp_path / "ca"), [], IdentityStatus()
    keep = tmp_path / "web.json"
    first = await _identity(plane, keep, [], IdentityStatus()).renew()
    task = asyncio.create_task(_identity(plane, keep, published, status).run())
    try:
        await wait_until(lambda: len(published) >= 2, timeout=10, what="a renewal")
    finally:
        task.cancel()
    assert published[0] == first  # served before asking the control plane
    assert published[1].serial != first.serial and published[1].key_pem != first.key_pem


async def test_a_control_plane_without_a_ca_is_told_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    asked = 0

    async def no_ca(service: str, csr: bytes) -> IssuedCertificate:
        nonlocal asked
        asked += 1
        raise RejectedError(404, "http", ["POST /v1/agents/a/certificates: Not Found"])

    status = IdentityStatus()
    ident = ServiceIdentity(
        SERVICE, request=no_ca, publish=lambda i: None, status=status, changed=lambda: None
    )
    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(ident.run())
        try:
            await wait_until(lambda: status.state == "no-ca", timeout=5, what="no-ca")
        finally:
            task.cancel()
    assert asked == 1 and ident.current is None
    assert [r.message for r in caplog.records if "no certificate endpoint" in r.message]


async def test_an_answer_for_another_key_is_refused_and_the_old_one_kept(
    tmp_path: Path,
) -> None:
    plane, published, status = Plane(tmp_path / "ca"), [], IdentityStatus()
    ident = _identity(plane, None, published, status)
    good = await ident.renew()
    other = await _identity(plane, None, [], IdentityStatus()).renew()

    async def wrong(service: str, csr: bytes) -> IssuedCertificate:
        return IssuedCertificate(
            other.chain_pem, other.trust_bundle_pem, other.not_after, other.serial
        )

    ident._request = wrong  # (the control plane answers for another key)
    with pytest.raises(ServerError, match="does not certify this host's key"):
        await ident.renew()
    assert ident.current == good and published == [good]
