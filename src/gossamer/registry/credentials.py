"""Secrets for join tokens and agent credentials: random, kept only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: bytes of randomness in a token or credential (urlsafe base64: 43 characters)
SECRET_BYTES = 32


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    """The hex SHA-256 of ``secret``: what the store keeps instead of the secret."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def matches(secret: str, expected: str) -> bool:
    """Whether ``secret`` hashes to ``expected``, compared in constant time."""
    return hmac.compare_digest(digest(secret), expected)
