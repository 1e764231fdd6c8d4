"""A small synchronous client of the control plane's REST API, for the CLI.

Errors come back as an ``ApiError`` (one line per problem, as the server wrote them; its
subclass by status), ``UnreachableError`` when nothing answers at the address, or
``FateUnknownError`` when a change went out and no answer came.

Every request carries the operator token (``Authorization: Bearer``), the first found of:
``--token``, ``GOSSAMER_TOKEN``, the file ``$XDG_CONFIG_HOME/gossamer/token`` (default
``~/.config/gossamer/token``). The control plane writes its first token to
``<data-dir>/admin.token`` (docs/security.md, "Credentials").
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from gossamer.errors import ApiError, ClientError, FateUnknownError, UnreachableError
from gossamer.types import Manifest

DEFAULT_SERVER = "http://127.0.0.1:7070"
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
    ) -> None:
        self.server = server.rstrip("/")
        secret = operator_token(token)
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        self._http = httpx.Client(
            base_url=self.server, timeout=timeout, transport=transport, headers=headers
        )

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
        self._http.close()

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

    def proxy_config(self, node_id: str, type_: str | None = None) -> dict[str, Any]:
        params = {"type": type_} if type_ else None
        return self._dict("GET", f"/v1/proxies/{node_id}/config", params=params)

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
