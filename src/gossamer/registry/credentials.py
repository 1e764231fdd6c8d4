"""Secrets for join tokens and agent credentials: random, kept only as SHA-256 hashes.

A token string may carry the CA's fingerprint in front of its secret
(``gossamer.ca.trust``): only the secret is hashed and compared, so the pin is the
client's business and a token from before pins still works.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from gossamer.ca.trust import token_secret

#: bytes of randomness in a token or credential (urlsafe base64: 43 characters)
SECRET_BYTES = 32


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def digest(secret: str) -> str:
    """The hex SHA-256 of ``secret`` (of a token string: of its secret part): what the
    store keeps instead of the secret."""
    plain = token_secret(secret)
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def matches(secret: str, expected: str) -> bool:
    """Whether ``secret`` hashes to ``expected``, compared in constant time."""
    return hmac.compare_digest(digest(secret), expected)
