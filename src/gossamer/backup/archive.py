"""The backup archive: one versioned JSON document (docs/backup.md, "The archive").

::

    {"format": "gossamer-backup", "version": 1, "createdAt": ..., "gossamer": "0.x",
     "store": {"backend": "sqlite", "revision": 42},
     "counts": {"Route": 3, "AccessCommand": 12, ...},
     "resources": [<every manifest the store holds, owners' labels and all>],
     "ca": {"roots": [<SHA-256 of each trusted root>],
            "kdf": {"name": "scrypt", "salt": b64, "n": 32768, "r": 8, "p": 1},
            "cipher": "AES-256-GCM", "nonce": b64, "ciphertext": b64}}

The resources are in the clear (the store holds secrets only as digests); the CA
directory's files (root or intermediate key, certificates, rotation state) are one
AES-256-GCM ciphertext under a key derived from the passphrase with scrypt, its
associated data the format and version, so a wrong passphrase and a tampered ciphertext
both fail to open it, and nothing of the key is ever written unencrypted.

Pure and blocking (scrypt takes ~0.1 s on purpose): call from a worker thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from cryptography.hazmat.primitives.serialization import Encoding

from gossamer.errors import ConfigError
from gossamer.types import Manifest

FORMAT = "gossamer-backup"
VERSION = 1
#: scrypt cost (2**15, r=8: 32 MiB and ~0.1 s per try, OWASP's floor for scrypt)
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
#: a shorter passphrase is refused when a backup is made
MIN_PASSPHRASE = 8
#: the CA directory's files larger than this are not CA material (refused, not archived)
MAX_CA_FILE = 1 << 20
_AAD = f"{FORMAT}/{VERSION}".encode()


@dataclass(frozen=True)
class Archive:
    """A backup, decoded (the CA still encrypted: :func:`open_ca`)."""

    resources: list[Manifest]
    #: the store's revision the resources were read at, and its backend
    revision: int
    backend: str
    created_at: str
    gossamer: str
    #: the encrypted CA section as written (None: the backup holds no CA)
    ca: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise _bad(f"{where} is not base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{where} is not base64 text") from None


def _bad(what: str) -> ConfigError:
    return ConfigError(f"not a usable Gossamer backup: {what}; use a file `gossamer backup` wrote")


def check_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise ConfigError(
            f"the passphrase has {len(passphrase)} characters: give at least {MIN_PASSPHRASE} "
            "(it is all that protects the CA's private key in the backup)"
        )


def _key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))


def read_ca_files(directory: Path) -> dict[str, bytes]:
    """Every regular file of the CA directory (not the temporary ``.name.xxxx`` ones)."""
    files: dict[str, bytes] = {}
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.stat().st_size > MAX_CA_FILE:
            raise ConfigError(f"{path} is larger than 1 MiB: it is not CA material; move it away")
        files[path.name] = path.read_bytes()
    return files


def seal_ca(files: dict[str, bytes], passphrase: str) -> dict[str, Any]:
    """The archive's ``ca`` section: ``files`` encrypted, and the roots' fingerprints."""
    check_passphrase(passphrase)
    salt, nonce = os.urandom(16), os.urandom(12)
    plain = json.dumps({name: _b64(data) for name, data in files.items()}).encode()
    key = _key(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    roots: list[str] = []
    if "root-cert.pem" in files:
        roots = [
            hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest()
            for c in x509.load_pem_x509_certificates(files["root-cert.pem"])
        ]
    return {
        "roots": roots,
        "kdf": {"name": "scrypt", "salt": _b64(salt), "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
        "cipher": "AES-256-GCM",
        "nonce": _b64(nonce),
        "ciphertext": _b64(AESGCM(key).encrypt(nonce, plain, _AAD)),
    }


def open_ca(section: dict[str, Any], passphrase: str) -> dict[str, bytes]:
    """The CA directory's files from an archive's ``ca`` section; ``ConfigError`` for a
    wrong passphrase (or a damaged archive: the two cannot be told apart)."""
    kdf = section.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise _bad("ca.kdf is not scrypt")
    if section.get("cipher") != "AES-256-GCM":
        raise _bad(f"ca.cipher {section.get('cipher')!r} is not AES-256-GCM")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not all(isinstance(v, int) and 0 < v <= 2**20 for v in (n, r, p)):
        raise _bad("ca.kdf's n, r and p are not positive integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    key = _key(passphrase, _unb64(kdf.get("salt"), "ca.kdf.salt"), n, r, p)
    nonce = _unb64(section.get("nonce"), "ca.nonce")
    try:
        plain = AESGCM(key).decrypt(nonce, _unb64(section.get("ciphertext"), "ca.ciphertext"), _AAD)
    except InvalidTag:
        raise ConfigError(
            "wrong passphrase: the backup's CA material does not decrypt with it (or the "
            "file was damaged); give the passphrase the backup was made with"
        ) from None
    files = json.loads(plain)
    return {str(name): _unb64(data, f"ca file {name}") for name, data in files.items()}


def build(
    resources: list[Manifest],
    *,
    revision: int,
    backend: str,
    version: str,
    ca: dict[str, Any] | None,
) -> dict[str, Any]:
    """The archive document (``ca`` from :func:`seal_ca`)."""
    counts = Counter(str(m.get("kind")) for m in resources)
    return {
        "format": FORMAT,
        "version": VERSION,
        "createdAt": datetime.now(UTC).isoformat(timespec="seconds"),
        "gossamer": version,
        "store": {"backend": backend, "revision": revision},
        "counts": dict(sorted(counts.items())),
        "resources": resources,
        "ca": ca,
    }


def parse(data: bytes) -> Archive:
    """Decode an archive's bytes; ``ConfigError`` names what is wrong with them."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise _bad("it is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad(f"its format is not {FORMAT!r}")
    if doc.get("version") != VERSION:
        raise ConfigError(
            f"the backup is format version {doc.get('version')!r}; this Gossamer reads version "
            f"{VERSION}: restore it with the Gossamer release that wrote it"
        )
    resources, store, ca = doc.get("resources"), doc.get("store"), doc.get("ca")
    if not isinstance(resources, list) or not all(isinstance(m, dict) for m in resources):
        raise _bad("resources is not a list of manifests")
    if not isinstance(store, dict) or not isinstance(store.get("revision"), int):
        raise _bad("store.revision is missing")
    if ca is not None and not isinstance(ca, dict):
        raise _bad("ca is not an object")
    counts = doc.get("counts") if isinstance(doc.get("counts"), dict) else {}
    return Archive(
        resources=resources,
        revision=int(store["revision"]),
        backend=str(store.get("backend", "")),
        created_at=str(doc.get("createdAt", "")),
        gossamer=str(doc.get("gossamer", "")),
        ca=ca,
        counts={str(k): int(v) for k, v in (counts or {}).items()},
    )
