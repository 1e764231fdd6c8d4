"""``tls.caFile`` is read by the CLI relative to the manifest and sent as ``tls.ca``; a file
that is missing or holds no certificate is an error naming the file and field."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gossamer.cli.yaml_files import load_files
from gossamer.errors import ValidationError
from gossamer.model import ExternalService

MANIFEST = """
apiVersion: gossamer.dev/v1
kind: ExternalService
metadata: {name: api}
spec:
  hosts: [api.example.com]
  port: 443
  protocol: https
  tls: {caFile: certs/ca.pem}
"""


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_ca_file_is_read_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    pem = _pem()
    (tmp_path / "certs" / "ca.pem").write_text(pem)
    (tmp_path / "api.yaml").write_text(MANIFEST)
    (ext,) = load_files([tmp_path / "api.yaml"]).resources
    assert isinstance(ext, ExternalService) and ext.spec.tls is not None
    assert ext.spec.tls.ca == pem and ext.spec.tls.caFile is None
    assert "caFile" not in str(ext.to_manifest())


def test_missing_or_bad_ca_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "api.yaml").write_text(MANIFEST)
    with pytest.raises(ValidationError) as info:
        load_files([tmp_path / "api.yaml"])
    (error,) = [str(e) for e in info.value.errors]
    assert error.startswith("api.yaml: ExternalService default/api: spec.tls.caFile: cannot read")
    assert "No such file" in error
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("not a certificate")
    with pytest.raises(ValidationError) as info:
        load_files([tmp_path / "api.yaml"])
    (error,) = [str(e) for e in info.value.errors]
    assert error.startswith("api.yaml: ExternalService default/api: spec.tls.ca: is not PEM")
    assert "(read from caFile certs/ca.pem)" in error
