"""Knowing it is the control plane before sending it a secret (agent, gateway host, CLI).

Three ways to know the control plane's roots, tried in this order:

- ``--ca-file`` / ``GOSSAMER_CA_FILE``: the operator's copy of the roots (Consul and Vault
  style);
- the trust bundle a host keeps in its credential since it joined;
- the CA fingerprint a token carries (``gossamer.ca.trust``): the public trust bundle is
  fetched with no credential over an unverified connection, and only the roots of that
  fingerprint are kept (a server that is not the control plane cannot present a
  certificate chaining to them: it lacks the CA's key).

The connection that carries a secret is then verified against those roots, and the name
in ``--server`` must be in the server's certificate (workload certificates name no host,
so none of them passes for the control plane). Plain ``http://`` verifies nothing: the
control plane serves it on loopback only (``--api-tls off``).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from gossamer.ca.trust import (
    TRUST_BUNDLE_PATH,
    certificates,
    fingerprints,
    pem_of,
    roots_with,
    token_fingerprint,
)
from gossamer.errors import ConfigError, UnreachableError, UntrustedServerError

#: seconds for the unverified fetch of the trust bundle
FETCH_TIMEOUT = 10.0
#: the environment variable naming the operator's CA file
CA_FILE_ENV = "GOSSAMER_CA_FILE"


def is_tls(server: str) -> bool:
    return urlsplit(server).scheme == "https"


def client_context(roots_pem: bytes) -> ssl.SSLContext:
    """A client context trusting ``roots_pem`` only, checking the server's name."""
    context = ssl.create_default_context(cadata=roots_pem.decode("ascii"))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def read_ca_file(path: Path | str, option: str = "--ca-file") -> bytes:
    """The roots in ``path`` (PEM); ``ConfigError`` naming ``option`` if it holds none."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{option}: cannot read {path}: {e.strerror}") from None
    try:
        return pem_of(certificates(data, f"{option} {path}"))
    except ConfigError as e:
        raise ConfigError(f"{e}; give the control plane's root-cert.pem") from None


def fetch_trust_bundle(server: str) -> bytes:
    """``GET /trust-bundle`` over a connection that verifies nothing and carries no
    credential: public data, checked by the caller against a fingerprint (blocking)."""
    url = server.rstrip("/") + TRUST_BUNDLE_PATH
    try:
        with httpx.Client(verify=False, trust_env=False, timeout=FETCH_TIMEOUT) as client:
            response = client.get(url)
    except httpx.TransportError as e:
        raise UnreachableError(
            f"cannot reach the control plane at {server}: {e or type(e).__name__}; is it "
            "running? (check --server)"
        ) from None
    if response.status_code != 200:
        raise UntrustedServerError(
            f"{url} answered HTTP {response.status_code}, not the control plane's trust "
            "bundle: is --server a Gossamer control plane of this version? Nothing secret "
            "was sent"
        )
    return response.content


def pinned_roots(server: str, pin: str, *, what: str = "the token") -> bytes:
    """The roots of ``server``'s trust bundle whose fingerprint is ``pin`` (blocking);
    ``UntrustedServerError`` if it has none."""
    bundle = fetch_trust_bundle(server)
    try:
        roots = roots_with(bundle, pin)
        offered = ", ".join(fingerprints(bundle))
    except ConfigError:
        roots, offered = b"", "none"
    if not roots:
        raise UntrustedServerError(
            f"the server at {server} is not the control plane {what} belongs to: {what} "
            f"names the CA fingerprint {pin}, the server offers {offered}; nothing secret "
            f"was sent. {ROTATED}"
        )
    return roots


#: what to do with a token that names a root the control plane no longer uses; never
#: "re-pin to what the server offers": an impostor offers its own root
ROTATED = (
    "If the control plane's root was rotated since the token was made (gossamer ca "
    "rotate), the token's secret still works once verified against the new root: take "
    "<data-dir>/admin.token again (re-pinned to the current root), or pass --ca-file "
    "<data-dir>/ca/root-cert.pem (GOSSAMER_CA_FILE), or have an operator make a new one "
    "(`gossamer token create`; a join token always needs a new one) "
    "(docs/security.md, 'Rotating the root')"
)


def verification(
    server: str,
    *,
    token: str | None = None,
    ca_file: Path | str | None = None,
    bundle_pem: bytes | None = None,
) -> ssl.SSLContext | None:
    """The context to verify ``server`` with (blocking: may fetch the trust bundle):
    from ``ca_file``, else ``bundle_pem`` (kept since join), else the fingerprint in
    ``token``. None for plain ``http://``. ``UntrustedServerError`` when none of them
    is given for an ``https://`` server."""
    if not is_tls(server):
        return None
    if ca_file:
        return client_context(read_ca_file(ca_file))
    if bundle_pem:
        return client_context(bundle_pem)
    pin = token_fingerprint(token) if token else None
    if pin is None:
        raise UntrustedServerError(
            f"cannot verify the control plane at {server}: the token carries no CA "
            f"fingerprint and no --ca-file (or {CA_FILE_ENV}) was given; use a token "
            "this version created (e.g. <data-dir>/admin.token, `gossamer token create`) "
            "or pass --ca-file <data-dir>/ca/root-cert.pem. Nothing secret was sent"
        )
    return client_context(pinned_roots(server, pin))


def untrusted(e: BaseException, server: str) -> UntrustedServerError | None:
    """The error to raise for a failed connection whose cause is certificate
    verification, else None."""
    cause: BaseException | None = e
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    host = urlsplit(server).hostname
    return UntrustedServerError(
        f"the server at {server} failed verification ({cause.verify_message or cause}): "
        "it is not the control plane the token, --ca-file or the kept trust bundle names, "
        f"or its certificate does not name {host} (start the control plane with "
        f"--api-host {host}); nothing secret was sent. {ROTATED}"
    )
