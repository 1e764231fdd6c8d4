"""The CA's directory: a root generated on first start, or an operator's plugged intermediate.

Two layouts (docs/security.md, "The CA"):

* generated: ``root-cert.pem`` and ``root-key.pem``; the root signs workload certificates.
* plugged (Istio's ``cacerts``): ``ca-cert.pem`` and ``ca-key.pem`` (the intermediate that
  signs), ``root-cert.pem`` (the roots to trust; their keys stay offline) and optionally
  ``cert-chain.pem`` (``ca-cert.pem`` and any intermediates above it, up to the root).

Private keys are 0600 and the directory 0700 whatever the umask. All of this is blocking
file I/O and key generation: call it from a worker thread.
"""

from __future__ import annotations

import itertools
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gossamer.errors import ConfigError
from gossamer.files import PRIVATE_FILE, make_private, private_dir

ROOT_CERT = "root-cert.pem"
ROOT_KEY = "root-key.pem"
CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CERT_CHAIN = "cert-chain.pem"

#: how long a generated root lives
ROOT_VALIDITY = timedelta(days=3650)
#: certificates start this far in the past, so a host whose clock is behind accepts them
CLOCK_SKEW = timedelta(minutes=1)

SigningKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Material:
    """What the CA signs with and what it trusts."""

    #: the certificate whose key signs workload certificates (a root, or the intermediate)
    signer: x509.Certificate
    key: SigningKey
    #: certificates between a workload certificate and a root, ``signer`` first (empty when
    #: the root signs)
    chain: tuple[x509.Certificate, ...]
    #: every root currently trusted (the trust bundle)
    roots: tuple[x509.Certificate, ...]
    plugged: bool


def load_or_generate(directory: Path, trust_domain: str) -> Material:
    """The CA in ``directory``, made first if the directory holds none."""
    private_dir(directory, "CA directory")
    names = (ROOT_CERT, ROOT_KEY, CA_CERT, CA_KEY, CERT_CHAIN)
    present = {n for n in names if (directory / n).exists()}
    if present & {CA_CERT, CA_KEY, CERT_CHAIN}:
        return _plugged(directory, present)
    if present == {ROOT_CERT, ROOT_KEY}:
        return _generated(directory)
    if present:
        raise ConfigError(
            f"CA directory {directory}: has {', '.join(sorted(present))} but not "
            f"{', '.join(sorted({ROOT_CERT, ROOT_KEY} - present))}: restore the missing file, "
            f"or plug an intermediate ({CA_CERT}, {CA_KEY}, {ROOT_CERT}, {CERT_CHAIN}), or "
            "empty the directory to generate a new root (every workload must then renew)"
        )
    return _generate(directory, trust_domain)


# -- generated root ----------------------------------------------------------------------


def _generate(directory: Path, trust_domain: str) -> Material:
    key, cert = new_root(trust_domain)
    # the key first: a cert without its key is refused at the next start, never reissued
    write_file(directory / ROOT_KEY, key_bytes(key), PRIVATE_FILE)
    write_file(directory / ROOT_CERT, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return Material(cert, key, (), (cert,), plugged=False)


def new_root(trust_domain: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new self-signed ECDSA P-256 root and its key (nothing written)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Gossamer"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, trust_domain),
            # unique per root, so two roots (rotation) never share a subject
            x509.NameAttribute(NameOID.COMMON_NAME, f"Gossamer root CA {secrets.token_hex(4)}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=False,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def key_bytes(key: SigningKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a new file of ``mode`` (never wider: no umask race), then rename."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _generated(directory: Path) -> Material:
    roots = read_certs(directory, ROOT_CERT)
    key = read_key(directory, ROOT_KEY)
    signer = next((r for r in roots if _same_key(r, key)), None)
    if signer is None:
        raise ConfigError(
            f"CA directory {directory}: {ROOT_KEY} is not the key of any certificate in "
            f"{ROOT_CERT}: restore the matching pair"
        )
    _check_ca(signer, directory / ROOT_CERT)
    return Material(signer, key, (), tuple(roots), plugged=False)


# -- plugged intermediate ----------------------------------------------------------------


def _plugged(directory: Path, present: set[str]) -> Material:
    missing = sorted({CA_CERT, CA_KEY, ROOT_CERT} - present)
    if missing:
        raise ConfigError(
            f"CA directory {directory}: a plugged intermediate needs {CA_CERT}, {CA_KEY} and "
            f"{ROOT_CERT} (and optionally {CERT_CHAIN}); missing: {', '.join(missing)}"
        )
    if ROOT_KEY in present:
        raise ConfigError(
            f"CA directory {directory}: {ROOT_KEY} next to a plugged intermediate: keep the "
            "root's key offline and remove it from this host"
        )
    signer = read_certs(directory, CA_CERT)[0]
    key = read_key(directory, CA_KEY)
    if not _same_key(signer, key):
        raise ConfigError(f"CA directory {directory}: {CA_KEY} is not the key of {CA_CERT}")
    _check_ca(signer, directory / CA_CERT)
    roots = tuple(read_certs(directory, ROOT_CERT))
    above = read_certs(directory, CERT_CHAIN) if CERT_CHAIN in present else [signer]
    if above[0] != signer:
        above.insert(0, signer)
    chain = tuple(c for c in above if not _self_signed(c))
    _check_path(chain, roots, directory)
    return Material(signer, key, chain, roots, plugged=True)


def _check_path(
    chain: tuple[x509.Certificate, ...], roots: tuple[x509.Certificate, ...], directory: Path
) -> None:
    """Each certificate of ``chain`` is signed by the next, the last by one of ``roots``."""
    for child, parent in itertools.pairwise(chain):
        if not signed_by(child, parent):
            raise ConfigError(
                f"CA directory {directory}: {CERT_CHAIN}: {child.subject.rfc4514_string()} is "
                f"not signed by the next certificate, {parent.subject.rfc4514_string()}: "
                f"list {CA_CERT} first, then each issuer up to the root"
            )
    if not any(signed_by(chain[-1], root) for root in roots):
        raise ConfigError(
            f"CA directory {directory}: {chain[-1].subject.rfc4514_string()} is not signed by "
            f"any root in {ROOT_CERT}: put the root that signed the intermediate there"
        )


# -- reading files -----------------------------------------------------------------------


def read_certs(directory: Path, name: str) -> list[x509.Certificate]:
    path = directory / name
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ConfigError(f"CA file {path}: not PEM certificates ({e}): replace it") from None
    return certs


def read_key(directory: Path, name: str) -> SigningKey:
    path = directory / name
    make_private(path)  # 0600 even if the operator copied it in with a wider mode
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError:
        raise ConfigError(
            f"CA file {path}: the key is encrypted: store it unencrypted (the file is 0600)"
        ) from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"CA file {path}: not a PEM private key ({e}): replace it") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ConfigError(f"CA file {path}: a {type(key).__name__}; use an ECDSA or RSA key")
    return key


def _check_ca(cert: x509.Certificate, path: Path) -> None:
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ConfigError(
            f"CA file {path}: {cert.subject.rfc4514_string()} is not a CA certificate "
            "(basicConstraints CA:TRUE)"
        )
    if cert.not_valid_after_utc <= datetime.now(UTC):
        raise ConfigError(
            f"CA file {path}: {cert.subject.rfc4514_string()} expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d}: plug a valid intermediate"
        )


def _same_key(cert: x509.Certificate, key: SigningKey) -> bool:
    return cert.public_key() == key.public_key()


def _self_signed(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer and signed_by(cert, cert)


def signed_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
    """Whether ``parent`` issued ``child`` (names match and its key made the signature)."""
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
