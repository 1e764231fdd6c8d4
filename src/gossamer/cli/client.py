"""A small synchronous client of the control plane's REST API, for the CLI.

Errors come back as an ``ApiError`` (one line per problem, as the server wrote them; its
subclass by status), ``UnreachableError`` when nothing answers at the address, or
``FateUnknownError`` when a change went out and no answer came.

Every request carries the operator token (``Authorization: Bearer``), the first found of:
``--token``, ``GOSSAMER_TOKEN``, the file ``$XDG_CONFIG_HOME/gossamer/token`` (default
``~/.config/gossamer/token``). The control plane writes its first token to
``<data-dir>/admin.token`` (docs/security.md, "Credentials").

Over ``https://`` (the default) the server is verified before the token is sent: against
``GOSSAMER_CA_FILE`` (``gossamer --ca-file``) if set, else against the CA fingerprint the
token carries (``gossamer.agent.trust``); ``UntrustedServerError`` otherwise.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from gossamer.agent.trust import CA_FILE_ENV, is_tls, untrusted, verification
from gossamer.ca.trust import TRUST_BUNDLE_PATH
from gossamer.errors import (
    ApiError,
    ClientError,
    FateUnknownError,
    UnreachableError,
    UntrustedServerError,
)
from gossamer.types import Manifest

DEFAULT_SERVER = "https://127.0.0.1:7070"
#: the environment variable holding the operator token
TOKEN_ENV = "GOSSAMER_TOKEN"
#: how long a read may take
REQUEST_TIMEOUT = 10.0
#: how long an apply or delete may take (``--timeout``; with ``--wait``, plus its wait):
#: validating and storing 10,000 resources takes seconds, more on a loaded machine
CHANGE_TIMEOUT = 300.0


def token_file(environ: Mapping[str, str] = os.environ) -> Path:
    """Where the CLI looks for the operator token when neither --token nor
    ``GOSSAMER_TOKEN`` gives one."""
    config = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(config).expanduser() / "gossamer" / "token"


def operator_token(given: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The token to send: ``given`` (--token), else ``GOSSAMER_TOKEN``, else the first line
    of ``token_file()``; None if there is none (the control plane then answers 401 saying
    where its first token is)."""
    for candidate in (given, environ.get(TOKEN_ENV)):
        if candidate and candidate.strip():
            return candidate.strip()
    try:
        text = token_file(environ).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return text.splitlines()[0].strip() if text else None


class ApiClient:
    """``with ApiClient(server) as api: api.apply(...)``; ``token`` is the operator token
    (None: ``operator_token`` finds it); ``transport`` is for tests."""

    def __init__(
        self,
        server: str,
        *,
        token: str | None = None,
        timeout: float = REQUEST_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
        ca_file: str | None = None,
        roots: bytes | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        #: roots learnt over a connection this CLI had verified (``gossamer ca rotate``
        #: follows the API's certificate to the new root); used instead of the token's pin
        self._roots = roots
        self._secret = operator_token(token)
        self._timeout = timeout
        self._transport = transport
        self._ca_file = ca_file or os.environ.get(CA_FILE_ENV) or None
        self._client: httpx.Client | None = None
        #: https with neither token nor CA file: the server cannot be verified; its 401
        #: (saying where the token is) is shown, any other answer refused
        self._unverified = is_tls(self.server) and not self._secret and not self._ca_file

    @property
    def _http(self) -> httpx.Client:
        """The HTTP client, made on first use: over https only once the server is verified
        (which may fetch its trust bundle first), so nothing secret goes to another."""
        if self._client is None:
            verify: ssl.SSLContext | bool = True
            if self._transport is None and self._unverified:
                verify = False  # no token: nothing secret to send, only a 401 is believed
            elif self._transport is None:
                found = verification(
                    self.server, token=self._secret, ca_file=self._ca_file, bundle_pem=self._roots
                )
                verify = True if found is None else found
            headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
            self._client = httpx.Client(
                base_url=self.server,
                timeout=self._timeout,
                transport=self._transport,
                headers=headers,
                verify=verify,
            )
        return self._client

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    @property
    def secret(self) -> str | None:
        """The operator token this client sends (None: none found)."""
        return self._secret

    @property
    def verifies(self) -> bool:
        """Over https, and the server is verified before anything is sent."""
        return is_tls(self.server) and not self._unverified

    def verified_trust_bundle(self) -> bytes:
        """``GET /trust-bundle`` over this client's verified connection: every root the
        mesh trusts, believed because the server proved itself first."""
        response = self._http.get(TRUST_BUNDLE_PATH)
        if response.status_code != 200:
            raise ApiError.answered(
                response.status_code,
                "http",
                [f"GET {self.server}{TRUST_BUNDLE_PATH} answered HTTP {response.status_code}"],
            )
        return response.content

    # -- resources ---------------------------------------------------------------------

    def apply(
        self,
        manifests: Sequence[Manifest],
        sources: Sequence[str] | None = None,
        *,
        dry_run: bool = False,
        wait: bool = False,
        wait_timeout: float = 30.0,
        timeout: float = CHANGE_TIMEOUT,
    ) -> dict[str, Any]:
        """Apply; ``FateUnknownError`` if no answer comes within ``timeout`` (plus the wait)."""
        body = {
            "manifests": list(manifests),
            "sources": list(sources) if sources is not None else None,
            "dryRun": dry_run,
            "wait": wait,
            "waitTimeout": wait_timeout,
        }
        timeout += wait_timeout if wait else 0
        return self._dict("POST", "/v1/apply", json=body, timeout=timeout, change=not dry_run)

    def validate(
        self, manifests: Sequence[Manifest], sources: Sequence[str] | None = None
    ) -> dict[str, Any]:
        body = {"manifests": list(manifests), "sources": list(sources) if sources else None}
        return self._dict("POST", "/v1/validate", json=body)

    def get(self, kind: str, namespace: str, name: str) -> Manifest:
        return self._dict("GET", f"/v1/resources/{kind}/{namespace}/{name}")

    def list_resources(self, kind: str, namespace: str | None = None) -> tuple[str, list[Manifest]]:
        """The canonical kind and its resources (every namespace unless one is given)."""
        params = {"namespace": namespace} if namespace else None
        body = self._dict("GET", f"/v1/resources/{kind}", params=params)
        return str(body["kind"]), list(body["items"])

    def delete(
        self,
        kind: str,
        namespace: str,
        name: str,
        *,
        wait: bool = False,
        timeout: float = CHANGE_TIMEOUT,
    ) -> dict[str, Any]:
        params = {"wait": "true"} if wait else None
        path = f"/v1/resources/{kind}/{namespace}/{name}"
        return self._dict("DELETE", path, params=params, timeout=timeout, change=True)

    def delete_many(
        self,
        refs: Sequence[tuple[str, str, str]],
        *,
        wait: bool = False,
        timeout: float = CHANGE_TIMEOUT,
    ) -> dict[str, Any]:
        """Delete (kind, namespace, name) refs in one transaction."""
        body = {
            "resources": [{"kind": k, "namespace": ns, "name": n} for k, ns, n in refs],
            "wait": wait,
        }
        return self._dict("POST", "/v1/delete", json=body, timeout=timeout, change=True)

    # -- proxies -----------------------------------------------------------------------

    def proxies(self) -> list[dict[str, Any]]:
        return list(self._dict("GET", "/v1/proxies")["items"])

    def proxy_summary(self) -> dict[str, Any]:
        """Proxies in and out of sync, queue depth, push latency (``/v1/proxies/summary``)."""
        return self._dict("GET", "/v1/proxies/summary")

    def local_addresses(self) -> dict[tuple[str, str, str], str]:
        """(kind, namespace, name) -> the local address apps dial for that service."""
        items = self._dict("GET", "/v1/describe/addresses")["items"]
        return {(i["kind"], i["namespace"], i["name"]): str(i["address"]) for i in items}

    def version(self) -> dict[str, Any]:
        """The control plane's version and the Envoy release it expects (``/v1/version``)."""
        return self._dict("GET", "/v1/version")

    def proxy_config(
        self, node_id: str, type_: str | None = None, *, wait: float = REQUEST_TIMEOUT
    ) -> dict[str, Any]:
        """Asked of the host that runs the proxy, which has ``wait`` seconds to answer."""
        params = {"timeout": f"{wait:g}", **({"type": type_} if type_ else {})}
        path = f"/v1/proxies/{node_id}/config"
        return self._dict("GET", path, params=params, timeout=wait + REQUEST_TIMEOUT)

    def describe(
        self, what: str, namespace: str, name: str, *, wait: float = REQUEST_TIMEOUT
    ) -> dict[str, Any]:
        """``services`` or ``routes``: what ``gossamer describe`` shows; the proxies' hosts
        have ``wait`` seconds to send their counters."""
        params = {"timeout": f"{wait:g}"} if what == "services" else None
        path = f"/v1/describe/{what}/{namespace}/{name}"
        return self._dict("GET", path, params=params, timeout=wait + REQUEST_TIMEOUT)

    def xds_addresses(self) -> dict[str, Any]:
        """Where the control plane serves xDS (public ``/xds-addresses``: lists of
        ``HOST:PORT``, ``xdsAddresses`` plaintext and ``xdsTlsAddresses`` mTLS)."""
        return self._dict("GET", "/xds-addresses")

    def describe_mesh(self) -> dict[str, Any]:
        """What ``gossamer describe mesh`` shows (the issuers' key fetches among it)."""
        return self._dict("GET", "/v1/describe/mesh")

    # -- access control (NGAC) ---------------------------------------------------------

    def authz(self, what: str, **params: str | None) -> dict[str, Any]:
        """``check`` (POST), ``explain``, ``access``, ``audit`` (GET) under /v1/authz."""
        given = {k: v for k, v in params.items() if v is not None}
        if what == "check":
            return self._dict("POST", "/v1/authz/check", json=given)
        return self._dict("GET", f"/v1/authz/{what}", params=given)

    # -- plumbing ----------------------------------------------------------------------

    def _dict(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str] | None = None,
        timeout: float | None = None,
        change: bool = False,
    ) -> dict[str, Any]:
        body = self._request(method, path, json=json, params=params, timeout=timeout, change=change)
        if not isinstance(body, dict):
            raise ApiError.answered(
                200,
                "protocol",
                [
                    f"{self.server}{path} answered {body!r}, not an "
                    "object: is --server a Gossamer control plane?"
                ],
            )
        return body

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: object,
        params: dict[str, str] | None,
        timeout: float | None,
        change: bool,
    ) -> object:
        """The decoded answer. A ``change`` (apply, delete) that got no answer raises
        ``FateUnknownError``, never advice to retry: it may have been stored."""
        extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
        try:
            response = self._http.request(method, path, json=json, params=params, **extra)
        except (httpx.ConnectError, httpx.ConnectTimeout) as e:
            if (refusal := untrusted(e, self.server)) is not None:
                raise refusal from None
            raise UnreachableError(
                f"cannot reach the control plane at {self.server}: {e or type(e).__name__}; "
                "start it with `gossamer control-plane` or pass --server"
            ) from None
        except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as e:
            if change:
                # The request went out: the server may have committed it, or not.
                waited = f"within {timeout:g} s" if timeout is not None else "in time"
                if not isinstance(e, httpx.TimeoutException):
                    waited = f"({e or type(e).__name__})"
                raise FateUnknownError(
                    f"the control plane at {self.server} did not answer {method} {path} "
                    f"{waited}: it may or may not have been stored"
                ) from None
            if not isinstance(e, httpx.TimeoutException):
                raise UnreachableError(
                    f"the control plane at {self.server} closed the connection: {e}; "
                    "check that it is running and its log"
                ) from None
            raise ClientError(
                f"the control plane at {self.server} did not answer {method} {path} in time; "
                "it may be overloaded: check its log and retry"
            ) from None
        except httpx.HTTPError as e:
            raise UnreachableError(
                f"talking to the control plane at {self.server} failed: {e}"
            ) from None
        if self._unverified and response.status_code != 401:
            raise UntrustedServerError(
                f"cannot verify the control plane at {self.server} without a token or a CA "
                f"file: pass --token or set {TOKEN_ENV} (the control plane writes its first "
                f"token to <data-dir>/admin.token), or set {CA_FILE_ENV}"
            )
        try:
            body: object = response.json()
        except ValueError:
            body = None
        if response.is_success and body is not None:
            return body
        if isinstance(body, dict) and isinstance(body.get("errors"), list):
            reason = body.get("reason")
            raise ApiError.answered(
                response.status_code,
                str(body.get("code", "")),
                [str(e) for e in body["errors"]],
                stored=bool(body.get("stored", False)),
                reason=reason if isinstance(reason, str) else None,
            )
        text = response.text.strip()[:200] or response.reason_phrase
        raise ApiError.answered(
            response.status_code,
            "http",
            [f"{method} {self.server}{path} answered HTTP {response.status_code}: {text}"],
        )
