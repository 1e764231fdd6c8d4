"""One service's identity on this host: a key made here, a certificate from the control
plane's CA, renewed at about half its lifetime.

Each renewal makes a new key (P-256, ``gossamer.ca.keys``), sends only a CSR with the
agent's credential, checks that the answer certifies that very key, keeps the result (in
memory and, 0600, in the state dir so a restarted agent serves it at once) and hands it to
the SDS server, which pushes it to every Envoy of the service; Envoy swaps certificates
without dropping connections. The CSR names no SPIFFE id: the control plane derives it
from the service (a host does not know the mesh's trust domain).

Failures are retried with back-off, short enough that a certificate is renewed long before
it expires even with a 1-minute TTL; the old certificate is served until a new one comes
(an expired one is not loaded from disk). A control plane without a CA (404: older
version) is noted once and asked again every few minutes; the workloads stay plaintext.

Renewing early: ``renew_soon()`` renews within ``RENEW_SOON_SPREAD`` seconds (spread so
that a mesh's hosts do not all ask at once). ``ca_version_seen(v)`` does so when the CA's
version the control plane announces (heartbeat answer ``caVersion``) differs from the one
the current certificate was issued under: that is how a root rotation moves hosts to the
new trust bundle and then to certificates from the new root (docs/agent-protocol.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gossamer.agent.replies import IssuedCertificate
from gossamer.agent.state import read_json, write_json
from gossamer.agent.status import IdentityStatus
from gossamer.ca.keys import csr_for, key_pem, new_key
from gossamer.errors import ConfigError, GossamerError, RejectedError, ServerError
from gossamer.polling import Backoff

log = logging.getLogger(__name__)

#: renew at this fraction of the lifetime left when the certificate arrived, +- jitter
ROTATE_AT = 0.5
ROTATE_JITTER = 0.05
#: the wait before asking again after a failure (capped well under a 1-minute TTL's half)
RENEW_RETRY = Backoff(initial=0.5, maximum=10.0)
#: how often to ask a control plane that has no CA (404) whether it has one now
NO_CA_RETRY_S = 300.0
#: ``renew_soon`` renews within this many seconds (at random)
RENEW_SOON_SPREAD = 2.0

Request = Callable[[str, bytes], Awaitable[IssuedCertificate]]


@dataclass(frozen=True)
class Identity:
    """What Envoy serves for one service: the chain (leaf first), its key, the trust bundle."""

    chain_pem: bytes
    key_pem: bytes
    trust_bundle_pem: bytes
    serial: str
    not_after: datetime
    spiffe_id: str

    def to_json(self) -> dict[str, str]:
        return {
            "certificateChain": self.chain_pem.decode(),
            "privateKey": self.key_pem.decode(),
            "trustBundle": self.trust_bundle_pem.decode(),
        }


def identity_of(chain_pem: bytes, key_pem_bytes: bytes, trust_bundle_pem: bytes) -> Identity:
    """Check that the chain's leaf certifies ``key_pem_bytes`` and names one URI SAN;
    ``ValueError`` saying what is wrong otherwise."""
    leaf = x509.load_pem_x509_certificate(chain_pem)
    key = serialization.load_pem_private_key(key_pem_bytes, password=None)
    der = serialization.Encoding.DER
    info = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(der, info) != key.public_key().public_bytes(der, info):
        raise ValueError("the certificate does not certify this host's key")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ValueError(
            "the certificate names no SPIFFE id (no subject alternative name)"
        ) from None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise ValueError(f"the certificate names {len(uris)} URIs, not one SPIFFE id")
    x509.load_pem_x509_certificates(trust_bundle_pem)  # (raises ValueError if not PEM)
    return Identity(
        chain_pem,
        key_pem_bytes,
        trust_bundle_pem,
        format(leaf.serial_number, "x"),
        leaf.not_valid_after_utc,
        uris[0],
    )


def load_identity(path: Path, now: datetime) -> Identity | None:
    """The identity kept in ``path`` if it is whole and not expired."""
    try:
        data = read_json(path)
        if not isinstance(data, dict):
            return None
        found = identity_of(
            str(data["certificateChain"]).encode(),
            str(data["privateKey"]).encode(),
            str(data["trustBundle"]).encode(),
        )
    except (ConfigError, KeyError, ValueError) as e:
        log.warning("ignoring the kept identity in %s: %s", path, e)
        return None
    return found if found.not_after > now else None


class ServiceIdentity:
    """``await run()`` keeps one service's certificate fresh until cancelled."""

    def __init__(
        self,
        service: str,
        *,
        request: Request,
        publish: Callable[[Identity], None],
        status: IdentityStatus,
        changed: Callable[[], None],
        keep: Path | None = None,
        registered: asyncio.Event | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.service = service
        self.current: Identity | None = None
        self._request = request
        self._publish = publish
        self._status = status
        self._changed = changed
        self._keep = keep
        self._registered = registered
        self._rng = rng or random.Random()
        self._told_no_ca = False
        self._rotate_at = _now()
        self._wake = asyncio.Event()
        #: the CA's version the current certificate was issued under (None: unknown)
        self.ca_version: str | None = None

    def renew_soon(self) -> None:
        """Renew within ``RENEW_SOON_SPREAD`` seconds instead of at the planned time."""
        soon = _now() + timedelta(seconds=self._rng.uniform(0, RENEW_SOON_SPREAD))
        if soon < self._rotate_at:
            self._rotate_at = soon
            self._status.renew_at = soon.isoformat()
            self._changed()
        self._wake.set()

    def ca_version_seen(self, version: str | None) -> None:
        """The control plane announced its CA's ``version``: renew soon if the current
        certificate was issued under another one (None: it announces none; nothing)."""
        if version is None or self.current is None or version == self.ca_version:
            return
        log.info(
            "%s: the CA changed (version %s, the certificate's %s): renewing now",
            self.service,
            version,
            self.ca_version or "unknown",
        )
        self.ca_version = version  # (once per change; the renewal's answer says it again)
        self.renew_soon()

    async def _until_due(self) -> None:
        """Sleep until ``_rotate_at``, which ``renew_soon`` may bring forward."""
        while (delay := (self._rotate_at - _now()).total_seconds()) > 0:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    async def run(self) -> None:
        if self._keep is not None:
            kept = await asyncio.to_thread(load_identity, self._keep, _now())
            if kept is not None:
                log.info(
                    "%s: serving the kept certificate %s until it is renewed",
                    self.service,
                    kept.serial,
                )
                self._use(kept, rotate_at=_now())  # renewed at once: its age is unknown
        if self._registered is not None:
            await self._registered.wait()  # (the CA signs only for registered services)
        retries = RENEW_RETRY.retries()
        while True:
            if self.current is not None:
                await self._until_due()
            try:
                await self.renew()
            except RejectedError as e:
                if e.status != 404:
                    await self._failed(e, retries.next())
                    continue
                if not self._told_no_ca:
                    self._told_no_ca = True
                    log.warning(
                        "%s: the control plane has no certificate endpoint (an older "
                        "version?): its workloads stay plaintext; asking again every %g s",
                        self.service,
                        NO_CA_RETRY_S,
                    )
                self._status.state = "no-ca"
                self._status.error = str(e)
                self._changed()
                await asyncio.sleep(NO_CA_RETRY_S)
                continue
            except GossamerError as e:
                await self._failed(e, retries.next())
                continue
            retries.reset()

    async def renew(self) -> Identity:
        """A new key, a CSR, the control plane's answer, checked and served."""
        key = await asyncio.to_thread(new_key)
        csr = await asyncio.to_thread(csr_for, key, None)
        issued = await self._request(self.service, csr)
        try:
            identity = await asyncio.to_thread(
                identity_of, issued.chain_pem, key_pem(key), issued.trust_bundle_pem
            )
        except ValueError as e:
            raise ServerError(
                200,
                "protocol",
                [
                    f"the certificate the control plane issued for {self.service} is unusable: "
                    f"{e}; the last good one is still served"
                ],
            ) from None
        if self._keep is not None:
            await asyncio.to_thread(write_json, self._keep, identity.to_json())
        self.ca_version = issued.ca_version
        arrived = _now()
        fraction = ROTATE_AT + self._rng.uniform(-ROTATE_JITTER, ROTATE_JITTER)
        self._use(identity, rotate_at=arrived + (identity.not_after - arrived) * fraction)
        log.info(
            "%s: certificate %s (%s) valid until %s; renewing at %s",
            self.service,
            identity.serial,
            identity.spiffe_id,
            identity.not_after.isoformat(),
            self._rotate_at.isoformat(),
        )
        return identity

    def _use(self, identity: Identity, *, rotate_at: datetime) -> None:
        self.current = identity
        self._rotate_at = rotate_at
        self._publish(identity)
        s = self._status
        s.state, s.error, s.retry_in = "issued", None, None
        s.spiffe_id, s.serial = identity.spiffe_id, identity.serial
        s.not_after, s.renew_at = identity.not_after.isoformat(), rotate_at.isoformat()
        self._changed()

    async def _failed(self, e: GossamerError, delay: float) -> None:
        expired = self.current is not None and self.current.not_after <= _now()
        log.warning(
            "%s: could not renew its certificate: %s (retrying in %.1f s)%s",
            self.service,
            e,
            delay,
            "; the served one has EXPIRED" if expired else "",
        )
        self._status.state = "expired" if expired else "failing"
        self._status.error = str(e)
        self._status.retry_in = round(delay, 2)
        self._changed()
        await asyncio.sleep(delay)
        # (the loop does not sleep until the rotation time again: ``_rotate_at`` has passed)


def _now() -> datetime:
    return datetime.now(UTC)
