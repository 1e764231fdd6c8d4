"""Helpers for CA tests: verify a chain the way a TLS peer would, and make an offline root
with an intermediate like an operator's PKI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store, VerifiedClient

CaKey = ec.EllipticCurvePrivateKey


def verify_client(
    chain_pem: bytes, bundle_pem: bytes, at: datetime | None = None
) -> VerifiedClient:
    """Path validation (RFC 5280 / Web PKI rules of ``cryptography``) of a client chain."""
    leaf, *intermediates = x509.load_pem_x509_certificates(chain_pem)
    verifier = (
        PolicyBuilder()
        .store(Store(x509.load_pem_x509_certificates(bundle_pem)))
        .time(at or datetime.now(UTC))
        .build_client_verifier()
    )
    return verifier.verify(leaf, intermediates)


def ca_cert(
    subject: str,
    key: CaKey,
    issuer: tuple[x509.Certificate, CaKey] | None = None,
    *,
    lifetime: timedelta = timedelta(days=365),
) -> x509.Certificate:
    """A CA certificate for ``key``: self-signed, or signed by ``issuer`` (cert, key)."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)])
    parent_name, parent_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(parent_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent_key.public_key()), False
        )
        .sign(parent_key, hashes.SHA256())
    )


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: CaKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
