"""A generated root: what it issues verifies to the trust bundle, names exactly the SPIFFE id,
expires per the TTL, and its key is 0600 on disk whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import VerificationError
from tests.unit.ca.certs import verify_client

from gossamer.ca import keys
from gossamer.ca.authority import CertificateAuthority
from gossamer.errors import ConfigError, ValidationError
from gossamer.types import spiffe_id

CART = spiffe_id("shop.local", "default", "cart")


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def ca(tmp_path: Path, umask_022: None) -> CertificateAuthority:
    return CertificateAuthority.load_or_create(tmp_path / "ca", "shop.local")


def _leaf(chain_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(chain_pem)[0]


def test_issued_certificate_verifies_to_the_bundle_with_exactly_the_uri_san(
    ca: CertificateAuthority,
) -> None:
    issued = ca.sign(keys.csr_for(keys.new_key(), CART), spiffe_id=CART, ttl=timedelta(hours=1))
    verified = verify_client(issued.chain_pem, ca.trust_bundle_pem())
    assert verified.subjects == [x509.UniformResourceIdentifier(CART)]
    leaf = _leaf(issued.chain_pem)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical and list(san.value) == [x509.UniformResourceIdentifier(CART)]
    assert leaf.subject == x509.Name([])
    # the root signs: no intermediates in the chain
    assert len(x509.load_pem_x509_certificates(issued.chain_pem)) == 1


def test_leaf_is_an_mtls_end_entity(ca: CertificateAuthority) -> None:
    issued = ca.sign(keys.csr_for(keys.new_key(), CART), spiffe_id=CART, ttl=timedelta(hours=1))
    leaf = _leaf(issued.chain_pem)
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert set(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == {
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    }


def test_expires_per_ttl_and_starts_a_minute_back(ca: CertificateAuthority) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    issued = ca.sign(keys.csr_for(keys.new_key(), CART), spiffe_id=CART, ttl=timedelta(minutes=1))
    leaf = _leaf(issued.chain_pem)
    assert issued.not_after == leaf.not_valid_after_utc
    lifetime = leaf.not_valid_after_utc - before
    assert timedelta(seconds=59) <= lifetime <= timedelta(seconds=62)
    assert leaf.not_valid_before_utc <= before - timedelta(seconds=59)
    with pytest.raises(VerificationError):
        verify_client(issued.chain_pem, ca.trust_bundle_pem(), at=before + timedelta(minutes=2))


def test_serial_is_random_128_bit(ca: CertificateAuthority) -> None:
    csr = keys.csr_for(keys.new_key(), CART)
    a, b = (ca.sign(csr, spiffe_id=CART, ttl=timedelta(hours=1)) for _ in range(2))
    assert a.serial != b.serial
    assert a.serial.bit_length() == 128 == b.serial.bit_length()
    assert _leaf(a.chain_pem).serial_number == a.serial


def test_refuses_an_id_outside_its_trust_domain_and_a_ttl_out_of_range(
    ca: CertificateAuthority,
) -> None:
    other = spiffe_id("evil.local", "default", "cart")
    with pytest.raises(ValidationError, match=r"outside the mesh's trust domain shop\.local"):
        ca.sign(keys.csr_for(keys.new_key(), other), spiffe_id=other, ttl=timedelta(hours=1))
    csr = keys.csr_for(keys.new_key(), CART)
    for ttl in (timedelta(seconds=59), timedelta(hours=25)):
        with pytest.raises(ValidationError) as caught:
            ca.sign(csr, spiffe_id=CART, ttl=ttl)
        assert caught.value.errors[0].path == "ttl"


def test_retarget_follows_the_mesh(ca: CertificateAuthority) -> None:
    ca.retarget("bank.local")
    bank = spiffe_id("bank.local", "default", "cart")
    issued = ca.sign(keys.csr_for(keys.new_key(), bank), spiffe_id=bank, ttl=timedelta(hours=1))
    assert verify_client(issued.chain_pem, ca.trust_bundle_pem()).subjects == [
        x509.UniformResourceIdentifier(bank)
    ]
    with pytest.raises(ValidationError):
        ca.sign(keys.csr_for(keys.new_key(), CART), spiffe_id=CART, ttl=timedelta(hours=1))


def test_root_is_a_p256_ca_for_ten_years(ca: CertificateAuthority) -> None:
    (root,) = x509.load_pem_x509_certificates(ca.trust_bundle_pem())
    assert root.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = root.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    life = root.not_valid_after_utc - root.not_valid_before_utc
    assert timedelta(days=3649) < life < timedelta(days=3651)
    (info,) = ca.certificates()
    assert info.role == "root" and info.signing and info.serial == root.serial_number


def test_files_are_private_under_umask_022_and_reopen_keeps_the_root(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    directory = tmp_path / "ca"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "root-key.pem").stat().st_mode) == 0o600
    assert sorted(p.name for p in directory.iterdir()) == ["root-cert.pem", "root-key.pem"]
    again = CertificateAuthority.load_or_create(directory, "shop.local")
    assert again.trust_bundle_pem() == ca.trust_bundle_pem()
    issued = again.sign(keys.csr_for(keys.new_key(), CART), spiffe_id=CART, ttl=timedelta(hours=1))
    verify_client(issued.chain_pem, ca.trust_bundle_pem())


def test_a_root_without_its_key_is_refused_not_replaced(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    (tmp_path / "ca" / "root-key.pem").unlink()
    with pytest.raises(ConfigError, match=r"root-key\.pem"):
        CertificateAuthority.load_or_create(tmp_path / "ca", "shop.local")
    assert (tmp_path / "ca" / "root-cert.pem").read_bytes() == ca.trust_bundle_pem()


def test_a_key_of_another_root_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    CertificateAuthority.load_or_create(tmp_path / "other", "shop.local")
    other_key = (tmp_path / "other" / "root-key.pem").read_bytes()
    (tmp_path / "ca" / "root-key.pem").write_bytes(other_key)
    with pytest.raises(ConfigError, match="not the key of any certificate"):
        CertificateAuthority.load_or_create(tmp_path / "ca", "shop.local")
