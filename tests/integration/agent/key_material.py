"""Find a host's private keys in bytes: every form a key could be written in.

``KeyForms.of(pem)`` spells one EC key as PEM (PKCS#8 and SEC1), DER, the raw private
scalar (bytes, hex, base64, base64url, decimal) and its PEM body lines; ``find`` looks for
each in a haystack as it is and with whitespace and JSON ``\\n`` escapes removed (a PEM
inside JSON, a wrapped base64 line). Only what is secret is a form: the public key is in
every certificate and CSR and is no finding.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

_NOISE = (b"\\n", b"\\r", b"\n", b"\r", b" ", b"\t")


def _squeeze(data: bytes) -> bytes:
    for noise in _NOISE:
        data = data.replace(noise, b"")
    return data


def _base64_inside(data: bytes) -> list[bytes]:
    """What ``data`` looks like inside the base64 of anything holding it, at each of the
    three byte alignments: the chunks made of its bytes only (edges cut)."""
    out = []
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + data)
        start = 4 if offset else 0
        usable = (len(data) + offset) // 3 * 4 - 4  # drop the last chunk (padding, tail)
        out.append(encoded[start:usable])
    return out


@dataclass(frozen=True)
class KeyForms:
    name: str
    forms: dict[str, bytes]

    @classmethod
    def of(cls, name: str, pem: bytes) -> KeyForms:
        key = serialization.load_pem_private_key(pem, None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        none = serialization.NoEncryption()
        der8 = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, none
        )
        der1 = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, none
        )
        sec1 = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, none
        )
        d = key.private_numbers().private_value
        scalar = d.to_bytes(32, "big")
        forms = {
            "pem": pem.strip(),
            "pem-sec1": sec1.strip(),
            "der-pkcs8": der8,
            "der-sec1": der1,
            "base64-der-pkcs8": base64.b64encode(der8),
            "base64-der-sec1": base64.b64encode(der1),
            "scalar": scalar,
            "scalar-hex": scalar.hex().encode(),
            "scalar-HEX": scalar.hex().upper().encode(),
            "scalar-base64": base64.b64encode(scalar).rstrip(b"="),
            "scalar-base64url": base64.urlsafe_b64encode(scalar).rstrip(b"="),
            "scalar-decimal": str(d).encode(),
        }
        # base64 of a larger blob holding the key (Envoy's config dump shows a secret's
        # inline bytes so): at each of the three alignments, the whole chunks only
        for form in ("pem", "der-pkcs8", "der-sec1", "scalar"):
            for offset, needle in enumerate(_base64_inside(forms[form])):
                forms[f"base64@{offset}-{form}"] = needle
        # the PEM body's lines after the first (the first is the same for every P-256 key:
        # version and algorithm); each holds key bytes and would survive re-wrapping only
        # line by line
        for pem_name, text in (("pem", pem), ("pem-sec1", sec1)):
            lines = [ln for ln in text.splitlines() if ln and not ln.startswith(b"-----")]
            for i, line in enumerate(lines[1:], 1):
                if len(line) >= 24:
                    forms[f"{pem_name}-line{i}"] = line
        return cls(name, forms)

    def find(self, haystack: bytes) -> list[str]:
        """The forms of this key in ``haystack``."""
        squeezed = _squeeze(haystack)
        return [
            form
            for form, needle in self.forms.items()
            if needle in haystack or _squeeze(needle) in squeezed
        ]


def scan(keys: Iterable[KeyForms], places: dict[str, bytes]) -> dict[str, list[str]]:
    """``{place: ["key: form", ...]}`` for every place holding any form of any key."""
    found: dict[str, list[str]] = {}
    keys = list(keys)
    for place, data in places.items():
        hits = [f"{k.name}: {form}" for k in keys for form in k.find(data)]
        if hits:
            found[place] = hits
    return found


def files_under(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root``, by path (sockets and the like skipped)."""
    return {str(p): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
