"""Pinning the control plane's CA: root fingerprints, and token strings that carry one.

A host that holds nothing but a token must not send it to whatever answers at the
control plane's address. So a join or operator token names the CA it belongs to, like
kubeadm's discovery hash: ``gsm1.<fingerprint>.<secret>``, where the fingerprint is the
SHA-256 of a root's SubjectPublicKeyInfo (base64url, no padding, 43 characters). The
client fetches the public trust bundle without sending anything secret, keeps only the
roots of that fingerprint, and sends the secret only over TLS verified against them
(docs/security.md, "API").

The server compares only the secret (``token_secret``): a token keeps working for the
server after a root rotation, and a token without a fingerprint (from before) too.
Pure functions over PEM and strings; no I/O.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from gossamer.errors import ConfigError

#: where the control plane serves its trust bundle (PEM), open to anyone
TRUST_BUNDLE_PATH = "/trust-bundle"
#: a token string: PREFIX, the root's fingerprint, ".", the secret
TOKEN_PREFIX = "gsm1."
FINGERPRINT_CHARS = 43


def fingerprint(cert: x509.Certificate) -> str:
    """base64url(SHA-256(SubjectPublicKeyInfo DER)) of ``cert``, without padding."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(spki).digest()).rstrip(b"=").decode()


def certificates(pem: bytes, what: str = "the trust bundle") -> list[x509.Certificate]:
    """Every certificate in ``pem``; ``ConfigError`` naming ``what`` if there is none."""
    try:
        found = x509.load_pem_x509_certificates(pem)
    except ValueError:
        found = []
    if not found:
        raise ConfigError(f"{what} holds no PEM certificate")
    return found


def pem_of(certs: list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def roots_with(bundle_pem: bytes, wanted: str) -> bytes:
    """The roots of ``bundle_pem`` whose fingerprint is ``wanted`` (PEM; empty if none)."""
    return pem_of([c for c in certificates(bundle_pem) if fingerprint(c) == wanted])


def fingerprints(bundle_pem: bytes) -> list[str]:
    return [fingerprint(c) for c in certificates(bundle_pem)]


def issuing_root(chain_pem: bytes, bundle_pem: bytes) -> x509.Certificate | None:
    """The root of ``bundle_pem`` that signed the last certificate of ``chain_pem``."""
    top = certificates(chain_pem, "the certificate chain")[-1]
    for root in certificates(bundle_pem):
        if root.subject != top.issuer:
            continue
        try:
            top.verify_directly_issued_by(root)
        except (InvalidSignature, ValueError, TypeError):  # not its signer, unsupported key
            continue
        return root
    return None


def compose_token(fingerprint_: str | None, secret: str) -> str:
    """The token string of ``secret`` pinned to the root of ``fingerprint_`` (None: bare)."""
    return secret if not fingerprint_ else f"{TOKEN_PREFIX}{fingerprint_}.{secret}"


def split_token(token: str) -> tuple[str | None, str]:
    """``(fingerprint or None, secret)`` of a token string; a bare secret has no pin."""
    token = token.strip()
    if not token.startswith(TOKEN_PREFIX):
        return None, token
    pin, dot, secret = token[len(TOKEN_PREFIX) :].partition(".")
    if not dot or len(pin) != FINGERPRINT_CHARS or not secret:
        return None, token  # not ours: the server will refuse it as an unknown token
    return pin, secret


def token_secret(token: str) -> str:
    """What the server compares: the secret part of a token string."""
    return split_token(token)[1]


def token_fingerprint(token: str) -> str | None:
    return split_token(token)[0]
