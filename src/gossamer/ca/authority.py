"""``CertificateAuthority``: signs short-lived workload certificates (X.509 SVIDs).

The server decides the identity (``spiffe://<td>/ns/<namespace>/sa/<service>``, from what the
host registered); the CSR only proves the host holds the key. The CA writes every field
itself: no subject, the SPIFFE id as the one URI SAN, a leaf usable for both ends of mTLS.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from gossamer.ca.csr import CsrKey, checked_key
from gossamer.ca.holders import CONTROL_PLANE, Holders
from gossamer.ca.material import CLOCK_SKEW, Material, signed_by
from gossamer.ca.rotation import RotationMachine, RotationState
from gossamer.ca.rotation_files import fingerprint, move, prepare, read_state, resume
from gossamer.errors import ConflictError, FieldError, GossamerError, ValidationError
from gossamer.types import parse_spiffe_id

#: how long a workload certificate may live (the Mesh's ``mtls.certificateTTL`` range)
MIN_TTL = timedelta(minutes=1)
MAX_TTL = timedelta(hours=24)

IPAddress = IPv4Address | IPv6Address


@dataclass(frozen=True, slots=True)
class Issued:
    """A signed workload certificate: the leaf first, then the intermediates (no root)."""

    chain_pem: bytes
    not_after: datetime
    serial: int


@dataclass(frozen=True, slots=True)
class CaCertificate:
    """One certificate of the CA, as ``gossamer ca status`` shows it (never a key)."""

    role: Literal["root", "intermediate"]
    subject: str
    serial: int
    not_before: datetime
    not_after: datetime
    #: SHA-256 of the DER certificate, hex
    fingerprint: str
    #: whether the CA signs with this certificate's key
    signing: bool


#: why replicas on etcd cannot rotate their root (``rotation_refused``)
ROTATION_WITH_REPLICAS = (
    "a root rotation cannot run on a control plane whose store is etcd: its new root and "
    "its phases are kept in this replica's data directory (ca/), which the other replicas "
    "do not share, so they would go on signing with the old root. Nothing was changed; "
    'rotating the root of replicas is not supported yet (docs/store.md, "Replicas")'
)


class CertificateAuthority:
    """The mesh's CA over one directory (``<data-dir>/ca``).

    ``trust_domain`` is the one it signs identities in; the server keeps it equal to the
    Mesh's ``spec.trustDomain`` (``retarget``). The roots are not bound to it, so changing
    the trust domain needs no new root.
    """

    def __init__(
        self,
        material: Material,
        trust_domain: str,
        directory: Path,
        rotation: RotationState | None = None,
    ) -> None:
        self._material = material
        self.trust_domain = trust_domain
        self.directory = directory
        #: serial -> agent of each workload certificate issued since start (in memory)
        self.holders = Holders()
        #: the root rotation under way, or the last one (``ca.rotation``)
        self.rotation = RotationMachine(rotation)
        #: why a root rotation may not start here (None: it may); ``ConflictError``
        self.rotation_refused: str | None = None
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    def load_or_create(cls, directory: Path, trust_domain: str) -> CertificateAuthority:
        """Open the CA in ``directory``; generate a root there on first start.

        Blocking (files, key generation): call it from a worker thread in a coroutine.
        ``ConfigError`` says what is wrong with the directory and how to fix it.
        """
        parse_spiffe_id(f"spiffe://{trust_domain}/ns/x/sa/x")  # a valid trust domain
        rotation = read_state(directory)  # (a rotation resumes where it stopped)
        material = resume(directory, rotation, trust_domain)
        return cls(material, trust_domain, directory, rotation)

    @property
    def plugged(self) -> bool:
        """Whether an operator's intermediate signs (the root's key is offline)."""
        return self._material.plugged

    def retarget(self, trust_domain: str) -> None:
        """Sign identities of ``trust_domain`` from now on (the Mesh changed it)."""
        parse_spiffe_id(f"spiffe://{trust_domain}/ns/x/sa/x")
        self.trust_domain = trust_domain

    def sign(
        self, csr_pem: bytes, *, spiffe_id: str, ttl: timedelta, holder: str | None = None
    ) -> Issued:
        """A certificate for ``spiffe_id`` over the CSR's key, valid for ``ttl``; with
        ``holder`` (the agent it is issued to) recorded in ``holders``.

        ``ValidationError`` (nothing issued): an id outside the CA's trust domain, a TTL
        outside 1m..24h, or a CSR ``checked_key`` refuses.
        """
        domain, _, _ = parse_spiffe_id(spiffe_id)
        if domain != self.trust_domain:
            raise ValidationError(
                [
                    FieldError(
                        f"{spiffe_id} is outside the mesh's trust domain {self.trust_domain}",
                        "spiffeId",
                    )
                ]
            )
        if not MIN_TTL <= ttl <= MAX_TTL:
            raise ValidationError(
                [FieldError(f"{ttl} is out of range: from {MIN_TTL} to {MAX_TTL}", "ttl")]
            )
        key = checked_key(csr_pem, spiffe_id)
        issued = self._issue(key, [x509.UniformResourceIdentifier(spiffe_id)], ttl)
        if holder is not None:
            self.holders.record(
                issued.serial, holder, issued.not_after, spiffe_id=spiffe_id, root=self.anchor
            )
        return issued

    def sign_server(
        self,
        key: CsrKey,
        *,
        uri: str,
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[IPAddress] = (),
        ttl: timedelta,
    ) -> Issued:
        """A certificate for one of the control plane's own servers (xDS), over ``key``
        (made in the control plane's process, so no CSR).

        ``uri`` is a SPIFFE id that is not a workload's (``spiffe://<td>/gossamer/...``):
        ``sign`` only issues ``/ns/<ns>/sa/<svc>`` ids, so no host can ever get one. The
        DNS and IP SANs let gRPC clients check the server's address.
        """
        if not uri.startswith(f"spiffe://{self.trust_domain}/gossamer/"):
            raise GossamerError(
                f"{uri} is not a control-plane identity of trust domain {self.trust_domain}"
            )
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
        names += [x509.DNSName(n) for n in dns_names]
        names += [x509.IPAddress(a) for a in ip_addresses]
        issued = self._issue(key, names, ttl)
        # recorded like a host's: root rotation waits until it chains to the new root
        self.holders.record(
            issued.serial, CONTROL_PLANE, issued.not_after, spiffe_id=uri, root=self.anchor
        )
        return issued

    def _issue(self, key: CsrKey, names: list[x509.GeneralName], ttl: timedelta) -> Issued:
        m = self._material
        now = datetime.now(UTC)
        # never outlive the certificates above it: the chain would stop verifying first
        not_after = min([now + ttl, *(c.not_valid_after_utc for c in (*m.chain, *m.roots))])
        if not_after <= now:
            raise GossamerError(
                "the CA's signing certificate has expired: plug a new intermediate or rotate "
                "the root (docs/security.md, 'The CA')"
            )
        serial = (1 << 127) | secrets.randbits(127)  # 128 bits, positive, unguessable
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(m.signer.subject)
            .public_key(key)
            .serial_number(serial)
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_LEAF_KEY_USAGE, critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            # critical: the subject is empty (RFC 5280 4.2.1.6, SPIFFE X509-SVID)
            .add_extension(x509.SubjectAlternativeName(names), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(m.key.public_key()),
                critical=False,
            )
            .sign(m.key, _hash_for(m.key))
        )
        chain = b"".join(_pem(c) for c in (leaf, *m.chain))
        return Issued(chain, leaf.not_valid_after_utc, serial)

    def trust_bundle_pem(self) -> bytes:
        """Every root currently trusted, PEM."""
        return b"".join(_pem(c) for c in self._material.roots)

    @property
    def anchor(self) -> str:
        """The SHA-256 fingerprint (hex) of the root the certificates issued now chain to."""
        m = self._material
        top = m.chain[-1] if m.chain else m.signer
        root = next((r for r in m.roots if r == top or signed_by(top, r)), m.roots[0])
        return fingerprint(root)

    @property
    def version(self) -> str:
        """Names what the CA trusts and signs with now (a digest of the trust bundle and
        the signing certificate). A host holding a certificate issued under another
        version renews it at once: that is how root rotation moves hosts along
        (``caVersion`` in the certificate and heartbeat answers, docs/agent-protocol.md)."""
        digest = hashlib.sha256(self.trust_bundle_pem())
        digest.update(self._material.signer.fingerprint(hashes.SHA256()))
        return digest.hexdigest()[:16]

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (in the event loop) whenever the trust bundle or the signing
        certificate changes: whoever holds a certificate from this CA renews it then."""
        self._listeners.append(listener)

    def _use(self, material: Material) -> None:
        self._material = material
        for listener in self._listeners:
            listener()

    async def start_rotation(self) -> RotationState:
        """Phase 1 of a root rotation: a new root, trusted beside the old one
        (``ConflictError``: one is under way, or the root key is offline)."""
        if self.rotation_refused is not None:
            raise ConflictError(self.rotation_refused)
        now = datetime.now(UTC)
        self.rotation.start(fingerprint(self._material.signer), "", now)  # (checks only)
        material, state = await asyncio.to_thread(
            prepare, self.directory, self._material, self.trust_domain, now
        )
        self.rotation.state = state
        self._use(material)
        return state

    async def move_rotation(self, state: RotationState) -> None:
        """Record and apply the rotation's next phase (``RotationMachine.observe``)."""
        material = await asyncio.to_thread(move, self.directory, state, self.trust_domain)
        self.rotation.state = state
        self._use(material)

    def certificates(self) -> list[CaCertificate]:
        """The roots, then the intermediates the CA hands out (never keys)."""
        m = self._material
        out = [_describe(c, "root", c == m.signer) for c in m.roots]
        return out + [_describe(c, "intermediate", c == m.signer) for c in m.chain]


_LEAF_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _hash_for(key: object) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _describe(
    cert: x509.Certificate, role: Literal["root", "intermediate"], signing: bool
) -> CaCertificate:
    return CaCertificate(
        role=role,
        subject=cert.subject.rfc4514_string(),
        serial=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        signing=signing,
    )
