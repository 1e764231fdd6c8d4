"""``Mesh.spec.authentication``: end users known by JSON Web Tokens (docs/ngac.md, "End users").

Each entry of ``jwt`` trusts one issuer: tokens whose ``iss`` is ``issuer``, whose ``aud``
holds one of ``audiences`` (any audience when none is listed), signed by a key of ``jwks``.
The keys travel to the proxies **inline**, in their configuration: no proxy ever fetches
from the identity provider. ``jwks.file`` is read by ``gossamer apply`` (relative to the
manifest) and sent as ``jwks.inline``, like an ExternalService's ``caFile``; the API refuses a
``file`` it is sent. A key rotation is a re-apply of the Mesh.

``jwks.uri`` is fetched by the **control plane** (``controlplane.jwks_refresh``), every
``refreshInterval`` and on each apply of the Mesh, and the keys it got are sent inline like
the others (kept as a ``FetchedJwks`` record: ``model.internal``). ``https`` only (``http``
for a loopback host alone: keys that say who a user is must not cross a network
unauthenticated); ``ca``/``caFile`` trusts a private CA for the identity provider.

``claimsToAttributes`` places a verified token's user (``jwt:<issuer>#<sub>``) under NGAC
user attributes without a node per person: ``{claim: {value: attribute}}``, e.g.
``{groups: {admins: admins-ua}}`` puts a token whose ``groups`` claim is (or contains)
``admins`` under ``admins-ua``.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import AfterValidator, Field, model_validator

from gossamer.errors import FieldError
from gossamer.model.base import Duration, Strict
from gossamer.model.tls import duration_between

#: what each key type needs (RFC 7517/7518/8037)
_KEY_FIELDS = {"RSA": ("n", "e"), "EC": ("crv", "x", "y"), "OKP": ("crv", "x")}
#: claim names and values a mapping may name
_Name = Annotated[str, Field(min_length=1, max_length=256)]
#: the largest JWKS taken, inline or fetched (characters; real ones are a few kB)
MAX_JWKS_CHARS = 1_000_000
#: how often a ``jwks.uri`` is fetched again when ``refreshInterval`` is not given
DEFAULT_REFRESH = timedelta(minutes=5)


def jwks_error(text: str) -> str | None:
    """Why ``text`` is not a JWKS of public keys Envoy can verify with, or None."""
    try:
        data: Any = json.loads(text)
    except ValueError as e:
        return f'not JSON ({e}); a JWKS is {{"keys": [{{"kty": "RSA", "n": ..., ...}}]}}'
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not keys:
        return 'a JWKS is an object with a non-empty "keys" list'
    for i, key in enumerate(keys):
        if not isinstance(key, dict):
            return f"keys[{i}] is not an object"
        kty = key.get("kty")
        if kty not in _KEY_FIELDS:
            return f"keys[{i}].kty is {kty!r}; use RSA, EC or OKP (public keys only)"
        missing = [f for f in _KEY_FIELDS[kty] if not isinstance(key.get(f), str)]
        if missing:
            return f"keys[{i}] ({kty}) lacks {', '.join(missing)}"
        if "d" in key:
            return f"keys[{i}] holds a private key ('d'); give the public key only"
    return None


def _loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _uri(value: str) -> str:
    parts = urlsplit(value)
    example = "e.g. https://idp.example/.well-known/jwks.json"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{value!r} is not an https:// URL with a host: {example}")
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number in range)
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port: {example}") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"{value!r} holds credentials (user@ or user:password@); the uri is stored and "
            "logged as is: give the JWKS's public address without them"
        )
    if parts.fragment:
        raise ValueError(f"{value!r} has a #fragment, which is never sent: drop it")
    if parts.scheme == "http" and not _loopback_host(parts.hostname):
        raise ValueError(
            f"{value!r}: http is taken for a loopback host only (127.0.0.1, ::1, localhost); "
            "the keys that say who a user is must not cross a network unauthenticated: "
            "use https (with ca or caFile for a private CA)"
        )
    return value


def _pem(value: str) -> str:
    if "-----BEGIN CERTIFICATE-----" not in value:
        raise ValueError(
            "is not PEM: give the CA certificate(s) the identity provider's certificate "
            "chains to, as text starting with '-----BEGIN CERTIFICATE-----' (or caFile: a "
            "path gossamer apply reads)"
        )
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError as e:
        raise ValueError(f"holds a certificate that does not parse ({e}): check the PEM") from None
    return value


class Jwks(Strict):
    """Where the issuer's public keys come from: exactly one of ``inline`` (the JWKS JSON),
    ``file`` (read by ``gossamer apply``, sent as ``inline``) or ``uri`` (fetched by the
    control plane every ``refreshInterval``, and on each apply of the Mesh)."""

    inline: Annotated[str, Field(min_length=1, max_length=MAX_JWKS_CHARS)] | None = None
    file: Annotated[str, Field(min_length=1)] | None = None
    uri: Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_uri)] | None = None
    #: with ``uri``: the CA certificate(s) (PEM) the identity provider's certificate must
    #: chain to; default: the control plane host's trust store
    ca: Annotated[str, AfterValidator(_pem)] | None = None
    #: a file holding ``ca``, read by ``gossamer apply`` relative to the manifest
    caFile: Annotated[str, Field(min_length=1)] | None = None
    #: with ``uri``: how often the control plane fetches it again (default 5m)
    refreshInterval: (
        Annotated[Duration, duration_between(timedelta(seconds=1), timedelta(hours=24), "1s..24h")]
        | None
    ) = None

    @model_validator(mode="after")
    def _one(self) -> Jwks:
        given = [f for f in ("inline", "file", "uri") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of inline (the JWKS JSON), file (read by gossamer apply) "
                "or uri (fetched by the control plane)"
            )
        if self.inline is not None:
            why = jwks_error(self.inline)
            if why is not None:
                raise ValueError(f"inline: {why}")
        if self.ca is not None and self.caFile is not None:
            raise ValueError("give ca (PEM) or caFile, not both")
        if self.uri is None:
            only = [f for f in ("ca", "caFile", "refreshInterval") if getattr(self, f) is not None]
            if only:
                raise ValueError(f"{', '.join(only)} go with uri only: drop them, or use uri")
        return self

    @property
    def refresh(self) -> timedelta:
        """How often a ``uri`` is fetched again."""
        return self.refreshInterval or DEFAULT_REFRESH


class JwtIssuer(Strict):
    """One trusted token issuer."""

    issuer: Annotated[str, Field(min_length=1, max_length=1024)]
    #: a token must name one of these in ``aud``; empty: any audience
    audiences: list[_Name] = Field(default_factory=list)
    jwks: Jwks
    #: claim name -> claim value -> NGAC user attribute
    claimsToAttributes: dict[_Name, dict[_Name, _Name]] = Field(default_factory=dict)


class MeshAuthentication(Strict):
    """End users' tokens the mesh accepts (none by default)."""

    jwt: list[JwtIssuer] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> MeshAuthentication:
        seen: set[str] = set()
        for i, j in enumerate(self.jwt):
            if j.issuer in seen:
                raise ValueError(f"jwt[{i}].issuer {j.issuer!r} is listed twice; merge them")
            seen.add(j.issuer)
        return self


def end_user(issuer: str, subject: str) -> str:
    """The NGAC user of a verified token: ``jwt:<issuer>#<sub>``."""
    return f"jwt:{issuer}#{subject}"


def check_authentication(mesh: Any, where: str, out: list[FieldError]) -> None:
    """A ``jwks.file`` or ``jwks.caFile`` that reached the control plane unread is refused:
    the CLI reads them (``gossamer apply``) and sends ``jwks.inline`` / ``jwks.ca``; the
    control plane reads no files."""
    for i, j in enumerate(mesh.spec.authentication.jwt):
        if j.jwks.file is not None:
            out.append(
                FieldError(
                    "jwks.file is read by gossamer apply (relative to the manifest) and sent "
                    "as jwks.inline: send the JWKS JSON in jwks.inline",
                    f"spec.authentication.jwt[{i}].jwks.file",
                    where,
                )
            )
        if j.jwks.caFile is not None:
            out.append(
                FieldError(
                    "jwks.caFile is read by gossamer apply (relative to the manifest) and "
                    "sent as jwks.ca: send the PEM in jwks.ca",
                    f"spec.authentication.jwt[{i}].jwks.caFile",
                    where,
                )
            )
