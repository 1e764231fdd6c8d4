"""Renewing early: a host renews within seconds when the control plane announces another CA
version than its certificate was issued under (root rotation), and not again for the same
one; an announcement of no version (an older control plane) changes nothing."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from pathlib import Path

import pytest

from gossamer.agent.identity.rotation import RENEW_SOON_SPREAD, ServiceIdentity
from gossamer.agent.replies import IssuedCertificate
from gossamer.agent.status import IdentityStatus
from gossamer.ca.authority import CertificateAuthority
from gossamer.polling import wait_until
from gossamer.types import spiffe_id

pytestmark = pytest.mark.asyncio

SERVICE = "default/web"
WEB = spiffe_id("shop.local", "default", "web")


class Plane:
    def __init__(self, directory: Path) -> None:
        self.ca = CertificateAuthority.load_or_create(directory, "shop.local")
        self.issued = 0

    async def request(self, service: str, csr: bytes) -> IssuedCertificate:
        self.issued += 1
        issued = self.ca.sign(csr, spiffe_id=WEB, ttl=timedelta(minutes=10))
        return IssuedCertificate(
            issued.chain_pem,
            self.ca.trust_bundle_pem(),
            issued.not_after,
            f"{issued.serial:x}",
            self.ca.version,
        )


async def test_another_ca_version_renews_at_once_and_only_once(tmp_path: Path) -> None:
    plane = Plane(tmp_path / "ca")
    published: list[object] = []
    status = IdentityStatus()
    identity = ServiceIdentity(
        SERVICE,
        request=plane.request,
        publish=published.append,
        status=status,
        changed=lambda: None,
        rng=random.Random(3),
    )
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(identity.run())
        await wait_until(lambda: plane.issued == 1, timeout=10, what="the first certificate")
        assert identity.ca_version == plane.ca.version
        planned = status.renew_at  # about 5 minutes from now
        identity.ca_version_seen(None)
        identity.ca_version_seen(plane.ca.version)  # the one it holds: nothing to do
        assert status.renew_at == planned
        await plane.ca.start_rotation()  # a new root in the bundle: a new version
        identity.ca_version_seen(plane.ca.version)
        await wait_until(
            lambda: plane.issued == 2,
            timeout=RENEW_SOON_SPREAD + 5,
            what="a renewal after the new CA version was announced",
        )

        # (the plane counts a signature before the identity has taken its answer in, and
        # ca_version_seen already recorded the new version: wait for the answer itself)
        def renewed() -> bool:
            current = identity.current
            return current is not None and current.trust_bundle_pem == plane.ca.trust_bundle_pem()

        await wait_until(renewed, timeout=10, what="the renewal taken")
        planned = status.renew_at
        identity.ca_version_seen(plane.ca.version)
        assert status.renew_at == planned and identity.ca_version == plane.ca.version
        task.cancel()
    assert plane.issued == 2
