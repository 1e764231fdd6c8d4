"""What the CA refuses from a host: each bad CSR gets a clear error on ``csr`` and no
certificate; the CSR's own subject and extensions never reach the certificate."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tests.unit.ca.certs import verify_client

from gossamer.ca import keys
from gossamer.ca.authority import CertificateAuthority
from gossamer.errors import ValidationError
from gossamer.types import spiffe_id

CART = spiffe_id("shop.local", "default", "cart")
HOUR = timedelta(hours=1)


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca", "shop.local")


def _csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
    names: list[x509.GeneralName] | None = None,
    subject: str | None = None,
    ca_flag: bool = False,
) -> bytes:
    attrs = [x509.NameAttribute(x509.NameOID.COMMON_NAME, subject)] if subject else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if names is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if ca_flag:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.PEM)


def _refused(ca: CertificateAuthority, csr: bytes, match: str) -> None:
    with pytest.raises(ValidationError, match=match) as caught:
        ca.sign(csr, spiffe_id=CART, ttl=HOUR)
    assert [e.path for e in caught.value.errors] == ["csr"]


def test_not_a_csr(ca: CertificateAuthority) -> None:
    _refused(ca, b"hello", "not a PEM certificate signing request")
    _refused(ca, ca.trust_bundle_pem(), "not a PEM certificate signing request")


def test_a_signature_that_does_not_verify(ca: CertificateAuthority) -> None:
    der = bytearray(
        x509.load_pem_x509_csr(keys.csr_for(keys.new_key(), CART)).public_bytes(
            serialization.Encoding.DER
        )
    )
    der[-1] ^= 0x01  # the last byte of the signature's s
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    _refused(ca, tampered, "signature does not verify")


@pytest.mark.parametrize(
    ("key", "match"),
    [
        (rsa.generate_private_key(65537, 1024), "RSA key of 1024 bits"),
        (ec.generate_private_key(ec.SECP256K1()), "curve secp256k1"),
        (ed25519.Ed25519PrivateKey.generate(), "key of type Ed25519PublicKey"),
    ],
    ids=["rsa-1024", "secp256k1", "ed25519"],
)
def test_weak_or_unknown_keys(
    ca: CertificateAuthority,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey,
    match: str,
) -> None:
    _refused(ca, _csr(key), match)


@pytest.mark.parametrize(
    "names",
    [
        [x509.UniformResourceIdentifier(spiffe_id("shop.local", "default", "payments"))],
        [x509.UniformResourceIdentifier(CART), x509.DNSName("cart.shop.local")],
        [x509.DNSName("cart")],
        [],
    ],
    ids=["other-service", "extra-dns", "dns-only", "empty"],
)
def test_anything_but_exactly_the_identity(
    ca: CertificateAuthority, names: list[x509.GeneralName]
) -> None:
    _refused(ca, _csr(keys.new_key(), names), f"this identity is {CART}")


@pytest.mark.parametrize(
    "key",
    [
        ec.generate_private_key(ec.SECP384R1()),
        rsa.generate_private_key(65537, 2048),
    ],
    ids=["p384", "rsa-2048"],
)
def test_other_strong_keys_are_accepted(
    ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
) -> None:
    issued = ca.sign(_csr(key), spiffe_id=CART, ttl=HOUR)
    verify_client(issued.chain_pem, ca.trust_bundle_pem())


def test_subject_and_other_requests_are_ignored(ca: CertificateAuthority) -> None:
    csr = _csr(keys.new_key(), subject="admin", ca_flag=True)
    leaf = x509.load_pem_x509_certificates(ca.sign(csr, spiffe_id=CART, ttl=HOUR).chain_pem)[0]
    assert leaf.subject == x509.Name([])
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert list(san) == [x509.UniformResourceIdentifier(CART)]


def test_host_side_keys() -> None:
    key = keys.new_key()
    assert key.curve.name == "secp256r1"
    loaded = serialization.load_pem_private_key(keys.key_pem(key), password=None)
    assert loaded.public_key() == key.public_key()
    csr = x509.load_pem_x509_csr(keys.csr_for(key, CART))
    assert csr.is_signature_valid and csr.public_key() == key.public_key()
    with pytest.raises(ValidationError):
        keys.csr_for(key, "spiffe://shop.local/cart")
