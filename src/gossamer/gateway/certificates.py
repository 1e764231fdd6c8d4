"""The gateway's own certificates (``Gateway.spec.tls``): files on this host, served to the
gateway's Envoy over the runner's SDS socket, re-read while it runs.

Envoy asks for one secret per certificate, named after its two files
(``names.gateway_certificate_secret``); the runner reads only files its Envoy asks for, and
serves them only once they hold what Envoy needs: PEM certificates (leaf first) and the
unencrypted PEM private key of the leaf. The files are read again every ``poll`` seconds;
new content (a renewed certificate) is pushed to Envoy, which uses it for new connections
(connections open keep theirs). Content that is not a valid pair (missing, unreadable, a
key of another certificate: a renewal half-written) is reported once and not served: Envoy
keeps the last good certificate. Write renewals by renaming a finished file into place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from gossamer.envoy.sds.protocol import SecretResource
from gossamer.envoy.sds.secrets import SecretCache, certificate_secret
from gossamer.errors import ConfigError
from gossamer.translate.names import gateway_certificate_files

#: how often certificate files are read again, by default
POLL_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class LoadedCertificate:
    """One certificate as served: its secret, and what the runner reports of it."""

    secret: SecretResource
    subject: str
    not_after: str


def content_version(chain_pem: bytes, key_pem: bytes) -> str:
    """The version of a certificate's secret: the first 16 hex digits of a SHA-256 of both
    files (a renewal is a new version; the same content read again is not)."""
    return hashlib.sha256(chain_pem + b"\0" + key_pem).hexdigest()[:16]


def load_certificate(
    name: str, certificate: str, private_key: str, *, served: str | None = None
) -> LoadedCertificate | None:
    """Read and check one certificate's files (blocking: call it in a thread); None if
    their content is still version ``served``."""
    chain_pem = _read(certificate, "certificate")
    key_pem = _read(private_key, "privateKey")
    version = content_version(chain_pem, key_pem)
    if version == served:
        return None
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError:
        raise ConfigError(f"{certificate} holds no PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise ConfigError(
            f"{private_key} is encrypted; Envoy needs the private key unencrypted (keep the "
            "file readable by the gateway's user only)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{private_key} holds no PEM private key") from None
    leaf = chain[0]
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != leaf.public_key().public_bytes(*spki):
        raise ConfigError(
            f"the private key in {private_key} is not the key of the first certificate in "
            f"{certificate} (a renewal half-written? write both files, then rename them "
            "into place)"
        )
    return LoadedCertificate(
        certificate_secret(name, chain_pem, key_pem, version),
        leaf.subject.rfc4514_string() or _san(leaf),
        leaf.not_valid_after_utc.isoformat(),
    )


def _read(path: str, field: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(
            f"cannot read {field} {path}: {e.strerror or e}; the file must exist on the "
            "gateway's host, readable by the gateway's user"
        ) from None


def _san(cert: x509.Certificate) -> str:
    with contextlib.suppress(x509.ExtensionNotFound):
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return ", ".join(names.get_values_for_type(x509.DNSName))
    return "(no subject)"


class CertificateFiles:
    """Puts the certificates Envoy asks for into ``cache`` under ``owner`` and keeps them
    fresh; ``run(wanted)`` until cancelled (``wanted``: the secret names Envoy asks for).
    ``poke()`` when those names change."""

    def __init__(
        self,
        cache: SecretCache,
        owner: str,
        *,
        say: Callable[[str], None],
        poll: float = POLL_SECONDS,
    ) -> None:
        self._cache = cache
        self._owner = owner
        self._say = say
        self._poll = poll
        self._wake = asyncio.Event()
        #: secret name -> what is served
        self.served: dict[str, LoadedCertificate] = {}
        #: secret name -> the problem last reported (each is said once)
        self.problems: dict[str, str] = {}

    def poke(self) -> None:
        self._wake.set()

    async def run(self, wanted: Callable[[], frozenset[str]]) -> None:
        while True:
            self._wake.clear()
            for name in sorted(wanted()):
                files = gateway_certificate_files(name)
                if files is not None:
                    await self.refresh(name, *files)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll):
                    await self._wake.wait()

    async def refresh(self, name: str, certificate: str, private_key: str) -> None:
        """Read ``name``'s files again; serve them if their content is new and valid."""
        before = self.served.get(name)
        try:
            loaded = await asyncio.to_thread(
                load_certificate,
                name,
                certificate,
                private_key,
                served=None if before is None else before.secret.version,
            )
        except ConfigError as e:
            if self.problems.get(name) != str(e):
                self.problems[name] = str(e)
                kept = "keeping the last good one" if name in self.served else "not served"
                self._say(f"certificate {certificate}: {e} ({kept})")
            return
        self.problems.pop(name, None)
        if loaded is None:
            return
        self.served[name] = loaded
        self._cache.put(self._owner, loaded.secret)
        verb = "serving" if before is None else "serving renewed"
        self._say(
            f"{verb} certificate {certificate} ({loaded.subject}, expires {loaded.not_after}, "
            f"version {loaded.secret.version})"
        )
