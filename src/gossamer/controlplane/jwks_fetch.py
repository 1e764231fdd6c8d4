"""Fetching one Mesh issuer's ``jwks.uri`` (docs/ngac.md, "End users"): by the control
plane, never by a proxy, which gets the keys inline (``controlplane.jwks_refresh`` keeps
them; ``translate.jwt`` sends them).

One GET with httpx on the event loop (no blocking call: the TLS contexts, which read the
trust store from disk, are built in a worker thread once per CA), over https verified
against the host's trust store or the issuer's ``ca``; ``http`` only for a loopback host
(the model refuses any other). Bounded in time (``timeout``, for the whole exchange) and
size (``max_bytes``, checked while reading), no redirects followed, and the body must be a
JWKS whose every key Envoy can load: each key is parsed as the public key it claims to be,
so a document that would make Envoy reject the whole ``jwt_authn`` config never reaches a
proxy. Every failure is a ``JwksFetchError`` naming the issuer, the uri and what is wrong.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gossamer.cancel import raise_if_cancelling
from gossamer.errors import JwksFetchError
from gossamer.model.authentication import MAX_JWKS_CHARS, JwtIssuer, jwks_error

#: seconds one fetch may take, from connecting to the last byte
FETCH_TIMEOUT = 10.0
_CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
}


def _b64(value: str) -> bytes:
    """base64url without padding (RFC 7515), strictly: other characters are refused."""
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("is not base64url") from None


def _check_key(key: dict[str, Any]) -> None:
    """Load ``key`` as the public key it says it is; ValueError if it is not one."""
    kty = key["kty"]
    if kty == "RSA":
        n = int.from_bytes(_b64(key["n"]), "big")
        e = int.from_bytes(_b64(key["e"]), "big")
        rsa.RSAPublicNumbers(e, n).public_key()
    elif kty == "EC":
        curve = _CURVES.get(key["crv"])
        if curve is None:
            raise ValueError(f"crv {key['crv']!r} is not one of {', '.join(_CURVES)}")
        x = int.from_bytes(_b64(key["x"]), "big")
        y = int.from_bytes(_b64(key["y"]), "big")
        ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
    else:  # OKP
        if key["crv"] != "Ed25519":
            raise ValueError(f"crv {key['crv']!r} is not Ed25519")
        ed25519.Ed25519PublicKey.from_public_bytes(_b64(key["x"]))


def unusable_jwks(text: str) -> str | None:
    """Why ``text`` is not a JWKS of public keys Envoy can load, or None: the model's
    checks (``jwks_error``), then every key parsed."""
    why = jwks_error(text)
    if why is not None:
        return why
    for i, key in enumerate(json.loads(text)["keys"]):
        try:
            _check_key(key)
        except (ValueError, TypeError) as e:
            return f"keys[{i}] ({key['kty']}, kid {key.get('kid', '-')!r}) is not a valid key: {e}"
    return None


class JwksFetcher:
    """Fetches issuers' JWKS documents; holds one TLS context per CA it was asked to trust."""

    def __init__(
        self,
        *,
        timeout: float = FETCH_TIMEOUT,
        max_bytes: int = MAX_JWKS_CHARS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        #: for tests: answers without a network (``httpx.MockTransport``)
        self._transport = transport
        self._contexts: dict[str | None, ssl.SSLContext] = {}

    async def _context(self, ca: str | None) -> ssl.SSLContext:
        context = self._contexts.get(ca)
        if context is None:
            # reads the trust store from disk: off the event loop
            context = await asyncio.to_thread(ssl.create_default_context, cadata=ca)
            if len(self._contexts) > 64:  # CAs of issuers since removed
                self._contexts.clear()
            self._contexts[ca] = context
        return context

    async def fetch(self, issuer: JwtIssuer) -> str:
        """``issuer``'s JWKS (the document as fetched, checked); ``JwksFetchError`` if it
        cannot be had or is not a usable JWKS."""
        uri = issuer.jwks.uri
        assert uri is not None, "only issuers with a jwks.uri are fetched"

        def failed(what: str) -> JwksFetchError:
            return JwksFetchError(f"the JWKS of issuer {issuer.issuer!r} from {uri}: {what}")

        try:
            async with asyncio.timeout(self.timeout):
                body = await self._get(uri, issuer.jwks.ca)
        except TimeoutError:
            raise_if_cancelling()
            raise failed(f"no complete answer within {self.timeout:g} s") from None
        except ssl.SSLError as e:
            raise failed(f"TLS failed ({e.reason or e}); give jwks.ca for a private CA") from None
        except httpx.HTTPError as e:
            raise_if_cancelling()
            hint = ""
            if "CERTIFICATE_VERIFY_FAILED" in str(e):
                hint = "; for an identity provider with a private CA give jwks.ca (or caFile)"
            raise failed(f"{type(e).__name__}: {e or 'no detail'}{hint}") from None
        except _Refused as e:
            raise failed(str(e)) from None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise failed("the answer is not UTF-8 text") from None
        why = unusable_jwks(text)
        if why is not None:
            raise failed(f"not a usable JWKS: {why}")
        return text

    async def _get(self, uri: str, ca: str | None) -> bytes:
        verify = await self._context(ca) if uri.startswith("https:") else False
        async with (
            httpx.AsyncClient(
                verify=verify,
                transport=self._transport,
                timeout=self.timeout,
                trust_env=False,
                follow_redirects=False,
            ) as client,
            client.stream("GET", uri, headers={"Accept": "application/json"}) as answer,
        ):
            if answer.status_code != 200:
                where = answer.headers.get("location")
                hint = f" (a redirect to {where}: give that as jwks.uri)" if where else ""
                raise _Refused(f"answered {answer.status_code} {answer.reason_phrase}{hint}")
            length = answer.headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_bytes:
                raise _Refused(f"the answer is {length} bytes, more than {self.max_bytes} bytes")
            body = bytearray()
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise _Refused(f"the answer is more than {self.max_bytes} bytes")
            return bytes(body)


class _Refused(Exception):
    """An answer this fetcher does not take (status, size): ``fetch`` names the issuer."""
