"""Signing JSON Web Tokens for tests and benchmarks (RS256 with ``cryptography``): an
identity provider in a few lines, its public keys as a JWKS for ``Mesh.spec.authentication``."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int(n: int) -> str:
    return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@dataclass
class TokenIssuer:
    """One issuer with its own RSA key (``kid``)."""

    issuer: str
    kid: str = "k1"
    key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> str:
        """The public key as a JWKS (JSON text)."""
        numbers = self.key.public_key().public_numbers()
        key = {"kty": "RSA", "kid": self.kid, "alg": "RS256", "use": "sig"}
        key |= {"n": _int(numbers.n), "e": _int(numbers.e)}
        return json.dumps({"keys": [key]})

    def token(
        self,
        subject: str,
        audience: str | None = None,
        *,
        lifetime_s: float = 600,
        issued_at: float | None = None,
        claims: Mapping[str, object] | None = None,
    ) -> str:
        """A signed token for ``subject``; a negative ``lifetime_s`` makes it expired."""
        now = time.time() if issued_at is None else issued_at
        payload: dict[str, object] = {"iss": self.issuer, "sub": subject, "iat": int(now)}
        payload["exp"] = int(now + lifetime_s)
        if audience is not None:
            payload["aud"] = audience
        payload.update(claims or {})
        header = {"alg": "RS256", "typ": "JWT", "kid": self.kid}
        signing = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(payload, separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing + "." + _b64(signature)
