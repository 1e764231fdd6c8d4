"""Server certificates for the gateway TLS tests: a throwaway CA issuing DNS-name
certificates, written to files as an operator would place them on the gateway's host."""

from __future__ import annotations

import datetime
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertFiles:
    certificate: Path
    key: Path
    serial: int


class WebCa:
    """A CA for web (DNS name) server certificates; ``pem`` is what clients trust."""

    def __init__(self, name: str = "test web root") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, directory: Path, stem: str, *names: str) -> CertFiles:
        """A certificate for ``names`` (DNS SANs) and its key, as ``<stem>.pem`` and
        ``<stem>.key`` in ``directory``; each file replaced whole (written aside, renamed)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        serial = x509.random_serial_number()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        files = CertFiles(directory / f"{stem}.pem", directory / f"{stem}.key", serial)
        _replace(files.key, key_pem)
        _replace(files.certificate, cert.public_bytes(serialization.Encoding.PEM))
        return files

    def client_context(self) -> ssl.SSLContext:
        """A client trusting this CA, checking host names."""
        return ssl.create_default_context(cadata=self.pem.decode())


def _replace(path: Path, data: bytes) -> None:
    aside = path.with_suffix(path.suffix + ".new")
    aside.write_bytes(data)
    os.chmod(aside, 0o600)
    os.replace(aside, path)


@dataclass(frozen=True)
class Handshake:
    names: list[str]
    serial: int
    version: str
    alpn: str | None


def peer(der: bytes) -> tuple[list[str], int]:
    cert = x509.load_der_x509_certificate(der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), cert.serial_number
