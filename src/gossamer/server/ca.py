"""The mesh CA wired to the control plane: opened from ``<data-dir>/ca`` with the Mesh's
trust domain, and kept signing in the Mesh's trust domain when it changes.

A change of ``Mesh.spec.trustDomain`` is accepted: the roots are not bound to a trust
domain, so no new root is needed; certificates issued from then on carry the new identity,
and those already issued keep the old one until their host renews them (at most one
``certificateTTL``). docs/security.md, "The CA", says what that means for STRICT services.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path

from gossamer.ca.authority import CertificateAuthority
from gossamer.controlplane.plane import ControlPlane
from gossamer.model.base import Resource
from gossamer.types import ResourceKey

log = logging.getLogger(__name__)


def _trust_domain(plane: ControlPlane) -> str:
    assert plane.model is not None, "load the control plane before opening the CA"
    return plane.model.mesh.spec.trustDomain


async def open_ca(plane: ControlPlane, directory: Path) -> CertificateAuthority:
    """The CA in ``directory`` (a root generated there on first start), following the
    Mesh's trust domain. Call after ``plane.load()``."""
    ca = await asyncio.to_thread(
        CertificateAuthority.load_or_create, directory, _trust_domain(plane)
    )
    if ca.plugged:
        log.info("CA: signing with the plugged intermediate in %s", directory)
    else:
        log.info("CA: signing with the root in %s", directory)

    def follow(changes: Mapping[ResourceKey, Resource | None], revision: int) -> None:
        now = _trust_domain(plane)
        if now != ca.trust_domain:
            log.warning(
                "trust domain changed from %s to %s (revision %d): new workload certificates "
                "carry the new identity; hosts pick it up when they renew",
                ca.trust_domain,
                now,
                revision,
            )
            ca.retarget(now)

    plane.add_listener({"Mesh"}, follow)
    follow({}, plane.model.revision if plane.model else 0)  # a change while it opened
    return ca
