"""An operator's intermediate (Istio-style ``cacerts``): it signs, the root's key stays
offline, and what it issues validates to that root."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.unit.ca.certs import ca_cert, key_pem, pem, verify_client

from gossamer.ca import keys
from gossamer.ca.authority import CertificateAuthority
from gossamer.errors import ConfigError
from gossamer.types import spiffe_id

CART = spiffe_id("shop.local", "default", "cart")


class Pki:
    """An offline root, and an intermediate it signed."""

    def __init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = ca_cert("Offline root", self.root_key, lifetime=timedelta(days=3650))
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = ca_cert("Mesh intermediate", self.key, (self.root, self.root_key))

    def plug(self, directory: Path, *, chain: bytes | None = None) -> Path:
        directory.mkdir(mode=0o755)
        (directory / "ca-cert.pem").write_bytes(pem(self.cert))
        (directory / "ca-key.pem").write_bytes(key_pem(self.key))
        os.chmod(directory / "ca-key.pem", 0o644)  # as an operator might copy it
        (directory / "root-cert.pem").write_bytes(pem(self.root))
        (directory / "cert-chain.pem").write_bytes(chain or pem(self.cert, self.root))
        return directory


@pytest.fixture
def pki() -> Pki:
    return Pki()


def test_the_intermediate_signs_and_the_chain_validates_to_the_offline_root(
    tmp_path: Path, pki: Pki
) -> None:
    ca = CertificateAuthority.load_or_create(pki.plug(tmp_path / "ca"), "shop.local")
    assert ca.plugged
    assert ca.trust_bundle_pem() == pem(pki.root)
    issued = ca.sign(keys.csr_for(keys.new_key(), CART), spiffe_id=CART, ttl=timedelta(hours=1))
    leaf, *rest = x509.load_pem_x509_certificates(issued.chain_pem)
    assert rest == [pki.cert]  # the intermediate rides along; the root is in the bundle only
    assert leaf.issuer == pki.cert.subject
    verified = verify_client(issued.chain_pem, pem(pki.root))
    assert verified.subjects == [x509.UniformResourceIdentifier(CART)]
    assert [c.role for c in ca.certificates()] == ["root", "intermediate"]
    assert [c.signing for c in ca.certificates()] == [False, True]


def test_key_made_private_and_no_root_key_written(tmp_path: Path, pki: Pki) -> None:
    directory = pki.plug(tmp_path / "ca")
    CertificateAuthority.load_or_create(directory, "shop.local")
    assert stat.S_IMODE((directory / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not (directory / "root-key.pem").exists()


def test_without_cert_chain_the_intermediate_alone_is_the_chain(tmp_path: Path, pki: Pki) -> None:
    directory = pki.plug(tmp_path / "ca")
    (directory / "cert-chain.pem").unlink()
    ca = CertificateAuthority.load_or_create(directory, "shop.local")
    issued = ca.sign(keys.csr_for(keys.new_key(), CART), spiffe_id=CART, ttl=timedelta(hours=1))
    verify_client(issued.chain_pem, pem(pki.root))


def test_leaf_never_outlives_the_intermediate(tmp_path: Path, pki: Pki) -> None:
    soon = timedelta(minutes=10)
    pki.cert = ca_cert("Short intermediate", pki.key, (pki.root, pki.root_key), lifetime=soon)
    ca = CertificateAuthority.load_or_create(pki.plug(tmp_path / "ca"), "shop.local")
    issued = ca.sign(keys.csr_for(keys.new_key(), CART), spiffe_id=CART, ttl=timedelta(hours=1))
    assert issued.not_after == pki.cert.not_valid_after_utc


def test_an_expired_intermediate_is_refused_at_start(tmp_path: Path, pki: Pki) -> None:
    gone = timedelta(minutes=-1)
    pki.cert = ca_cert("Old intermediate", pki.key, (pki.root, pki.root_key), lifetime=gone)
    with pytest.raises(ConfigError, match="expired"):
        CertificateAuthority.load_or_create(pki.plug(tmp_path / "ca"), "shop.local")


@pytest.mark.parametrize(
    ("breakage", "match"),
    [
        ("root-key", "keep the root's key offline"),
        ("missing-key", "missing: ca-key.pem"),
        ("wrong-key", "ca-key.pem is not the key of ca-cert.pem"),
        ("other-root", "not signed by any root in root-cert.pem"),
        ("not-ca", "is not a CA certificate"),
        ("encrypted", "the key is encrypted"),
    ],
)
def test_broken_cacerts_are_refused(tmp_path: Path, pki: Pki, breakage: str, match: str) -> None:
    directory = pki.plug(tmp_path / "ca")
    if breakage == "root-key":
        (directory / "root-key.pem").write_bytes(key_pem(pki.root_key))
    elif breakage == "missing-key":
        (directory / "ca-key.pem").unlink()
    elif breakage == "wrong-key":
        (directory / "ca-key.pem").write_bytes(key_pem(ec.generate_private_key(ec.SECP256R1())))
    elif breakage == "other-root":
        other = Pki()
        (directory / "root-cert.pem").write_bytes(pem(other.root))
        (directory / "cert-chain.pem").unlink()
    elif breakage == "not-ca":
        (directory / "ca-cert.pem").write_bytes(_leaf_like(pki))
        (directory / "cert-chain.pem").unlink()
    elif breakage == "encrypted":
        (directory / "ca-key.pem").write_bytes(
            pki.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
    with pytest.raises(ConfigError, match=match):
        CertificateAuthority.load_or_create(directory, "shop.local")


def _leaf_like(pki: Pki) -> bytes:
    """The intermediate's key in a certificate without CA:TRUE."""
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(pki.cert.subject)
        .issuer_name(pki.root.subject)
        .public_key(pki.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(pki.root_key, hashes.SHA256())
    )
    return pem(cert)
