"""The mesh CA wired to the control plane: opened from ``<data-dir>/ca`` with the Mesh's
trust domain, kept signing in the Mesh's trust domain when it changes, and its root
rotation driven (``RotationDriver``).

A change of ``Mesh.spec.trustDomain`` is accepted: the roots are not bound to a trust
domain, so no new root is needed; certificates issued from then on carry the new identity,
and those already issued keep the old one until their host renews them (at most one
``certificateTTL``). docs/security.md, "The CA", says what that means for STRICT services.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from gossamer.ca.authority import CertificateAuthority
from gossamer.ca.rotation import Observation, ProxySecrets
from gossamer.controlplane.plane import ControlPlane
from gossamer.envoy.sds.secrets import bundle_version
from gossamer.model.base import Resource
from gossamer.registry import Registry
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET
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


#: how often a rotation under way is looked at even when nothing was reported (expiries)
ROTATION_TICK_S = 1.0


class RotationDriver:
    """Moves a root rotation along (``gossamer.ca.rotation``): observes the proxies that
    get secrets over SDS (what their hosts report their Envoys ACKed) and the CA's record
    of issued certificates, and applies each phase to the CA once its conditions hold.

    Also tells hosts the CA's version with every heartbeat answer (``Registry.ca_version``):
    a host whose certificate was issued under another version renews it at once.
    """

    def __init__(self, plane: ControlPlane, registry: Registry, ca: CertificateAuthority) -> None:
        self._plane = plane
        self._registry = registry
        self._ca = ca
        self._wake = asyncio.Event()
        registry.ca_version = lambda: ca.version
        registry.sds_acks.add_listener(self._wake.set)
        ca.add_listener(self._wake.set)

    def observation(self, now: datetime) -> Observation:
        ca = self._ca
        acks = self._registry.sds_acks
        proxies = {
            node: ProxySecrets(
                acks.of(node).get(IDENTITY_SECRET), acks.of(node).get(TRUST_BUNDLE_SECRET)
            )
            for node in self._plane.monitor.sds_capable()
        }
        model = self._plane.model
        ttl = model.mesh.spec.mtls.certificateTTL if model is not None else None

        def root_of(serial: int) -> str | None:
            held = ca.holders.get(serial)
            return held.root if held is not None else None

        return Observation(
            now=now,
            bundle_version=bundle_version(ca.trust_bundle_pem()),
            proxies=proxies,
            root_of=root_of,
            current=ca.holders.current(),
            unrecorded_until=ca.holders.started + ttl if ttl is not None else None,
        )

    async def step(self) -> bool:
        """Look once; move to the next phase if it may. Whether it moved."""
        machine = self._ca.rotation
        if not machine.active:
            return False
        before = machine.progress
        moved = machine.observe(self.observation(datetime.now(UTC)))
        now = machine.progress
        if now is not None and now.waiting and (before is None or before.waiting != now.waiting):
            log.info("root rotation, phase %s: %s", now.phase, "; ".join(now.waiting))
        if moved is None:
            return False
        await self._ca.move_rotation(moved)
        log.warning("root rotation: phase %s", moved.phase)
        return True

    async def run(self) -> None:
        """Until cancelled: step whenever something changed, and every tick while a
        rotation is under way. A failed move is logged and tried again."""
        while True:
            self._wake.clear()
            try:
                if await self.step():
                    continue
            except Exception:
                log.exception("root rotation: could not move on; trying again in 10 s")
                await asyncio.sleep(10)
                continue
            tick = ROTATION_TICK_S if self._ca.rotation.active else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self._wake.wait()
