"""The gateway runner's certificate files: what it serves, what it refuses and says why."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gossamer.envoy.sds.secrets import SecretCache
from gossamer.errors import ConfigError
from gossamer.gateway.certificates import CertificateFiles, load_certificate
from gossamer.polling import wait_until
from gossamer.translate.names import gateway_certificate_files, gateway_certificate_secret


def _pair(directory: Path, stem: str, *, password: bytes | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{stem}.example")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return cert_path, key_path


def test_secret_names_carry_the_files_and_only_plain_absolute_paths_come_back() -> None:
    name = gateway_certificate_secret("/etc/tls/shop.pem", "/etc/tl:s/shop.key")
    assert "." not in name
    assert gateway_certificate_files(name) == ("/etc/tls/shop.pem", "/etc/tl:s/shop.key")
    assert gateway_certificate_files("identity") is None
    assert gateway_certificate_files("gateway-cert:/etc/%2E%2E/shadow:/k") is None
    assert gateway_certificate_files("gateway-cert:relative:/k") is None


def test_a_valid_pair_is_served_versioned_by_content(tmp_path: Path) -> None:
    cert, key = _pair(tmp_path, "shop")
    loaded = load_certificate("n", str(cert), str(key))
    assert loaded is not None and loaded.subject == "CN=shop.example"
    assert load_certificate("n", str(cert), str(key), served=loaded.secret.version) is None


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "cannot read certificate"),
        ("not-pem", "holds no PEM certificate"),
        ("other-key", "is not the key of the first certificate"),
        ("encrypted", "is encrypted; Envoy needs the private key unencrypted"),
    ],
)
def test_what_cannot_be_served_says_why(tmp_path: Path, case: str, message: str) -> None:
    cert, key = _pair(tmp_path, "shop", password=b"secret" if case == "encrypted" else None)
    if case == "missing":
        cert.unlink()
    elif case == "not-pem":
        cert.write_text("hello")
    elif case == "other-key":
        key = _pair(tmp_path, "other")[1]
    with pytest.raises(ConfigError, match=message):
        load_certificate("n", str(cert), str(key))


@pytest.mark.asyncio
async def test_a_broken_renewal_keeps_the_last_good_certificate_and_is_said_once(
    tmp_path: Path,
) -> None:
    cert, key = _pair(tmp_path, "shop")
    name = gateway_certificate_secret(str(cert), str(key))
    cache, said = SecretCache(), []
    cache.assign("gw", "gw")
    files = CertificateFiles(cache, "gw", say=said.append, poll=0.05)
    await files.refresh(name, str(cert), str(key))
    good = cache.for_node("gw")[name]
    _pair(tmp_path, "other")
    key.write_bytes((tmp_path / "other.key").read_bytes())  # half a renewal
    for _ in range(3):
        await files.refresh(name, str(cert), str(key))
    assert cache.for_node("gw")[name] == good
    assert sum("keeping the last good one" in s for s in said) == 1, said
    (tmp_path / "other.pem").rename(cert)  # the other half
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(files.run(lambda: frozenset({name})))
        await wait_until(
            lambda: cache.for_node("gw")[name].version != good.version,
            timeout=10,
            what="the renewed certificate in the cache",
        )
        task.cancel()
    assert "serving renewed certificate" in said[-1]
