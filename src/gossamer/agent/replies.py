"""The registry's answers as the agent reads them (docs/agent-protocol.md): what joining and
a CSR give (``JoinAnswer``, ``IssuedCertificate``), the error a failed call becomes, and the
variables of an ``env`` answer.

An error answer becomes the client branch of ``gossamer.errors`` by its status (``error``),
with the body's ``code``, its ``reason`` (a 401's, which decides what the agent does) and
one line saying what to do. An answer without what it must hold is a ``ServerError`` with
code ``protocol``: the control plane is not one of a matching version. No I/O here: the
calls are ``client.RegistryClient``'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from gossamer.errors import ApiError, ServerError


@dataclass(frozen=True)
class IssuedCertificate:
    """The answer to a CSR: the certificate chain (leaf first), the mesh's trust bundle,
    when the leaf expires and its serial (hex)."""

    chain_pem: bytes
    trust_bundle_pem: bytes
    not_after: datetime
    serial: str
    #: the CA's version it was issued under (``caVersion``; None from older control planes)
    ca_version: str | None = None


@dataclass(frozen=True)
class JoinAnswer:
    """What joining gave: the agent's id and credential, the mesh's trust bundle (PEM;
    empty from a control plane before TLS) and the xDS addresses it advertised."""

    agent_id: str
    credential: str
    trust_bundle_pem: bytes = b""
    xds: str | None = None
    xds_tls: str | None = None


def join_answer(body: Mapping[str, Any], url: str) -> JoinAnswer:
    """The ``POST /v1/agents/join`` answer ``body`` that ``url`` gave."""
    try:
        answer = JoinAnswer(
            str(body["agentId"]),
            str(body["credential"]),
            str(body.get("trustBundle") or "").encode("ascii"),
            _first(body.get("xdsAddresses")) or _text(body.get("xdsAddress")),
            _first(body.get("xdsTlsAddresses")) or _text(body.get("xdsTlsAddress")),
        )
    except (KeyError, TypeError, UnicodeEncodeError):
        raise ServerError(
            200,
            "protocol",
            [
                f"{url} answered {body!r} without "
                "agentId and credential: is --server a Gossamer control "
                "plane of a matching version?"
            ],
        ) from None
    return answer


def issued_certificate(body: Mapping[str, Any], url: str) -> IssuedCertificate:
    """The answer ``body`` that ``url`` gave to a CSR (``POST /v1/agents/{id}/certificates``)."""
    try:
        not_after = datetime.fromisoformat(str(body["notAfter"]).replace("Z", "+00:00"))
        if not_after.tzinfo is None:
            raise ValueError("notAfter has no time zone")
        int(str(body["serial"]), 16)
        return IssuedCertificate(
            str(body["certificateChain"]).encode("ascii"),
            str(body["trustBundle"]).encode("ascii"),
            not_after,
            str(body["serial"]).lower(),
            _ca_version(body),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise ServerError(
            200,
            "protocol",
            [
                f"{url} answered without a usable certificateChain, "
                f"trustBundle, notAfter (RFC 3339) and serial (hex) ({e}): is the "
                "control plane of a matching version?"
            ],
        ) from None


def _ca_version(body: Mapping[str, Any]) -> str | None:
    """The ``caVersion`` of an answer (docs/agent-protocol.md), None if absent."""
    found = body.get("caVersion")
    return found if isinstance(found, str) and found else None


def env_variables(body: Mapping[str, Any]) -> dict[str, str]:
    """The variables in a ``GET /v1/agents/{id}/env`` answer: ``{"env": {...}}`` or
    ``{"workloads": [{"env": {...}} | {"dependencies": [{"env": {...}}]}]}``."""
    out: dict[str, str] = {}
    sources: list[object] = [body.get("env")]
    for w in body.get("workloads", ()) if isinstance(body.get("workloads"), list) else ():
        if isinstance(w, dict):
            sources.append(w.get("env"))
            deps = w.get("dependencies")
            sources.extend(d.get("env") for d in deps or () if isinstance(d, dict))
    for env in sources:
        if isinstance(env, dict):
            out.update({str(k): str(v) for k, v in env.items()})
    return out


def error(response: httpx.Response, method: str, path: str, refused: str) -> ApiError:
    """The error answer as the client branch's ``ApiError`` of its status, with one line
    saying what to do."""
    status, reason = response.status_code, _refusal(response)
    if status == 401 and reason is not None:  # the control plane's answer says what to do
        message = f"{refused}: {_reason(response)}"
    elif status == 401:
        message = (
            f"{refused}: {_reason(response)}; create a new token with "
            "`gossamer token create` and run `gossamer agent join` again"
        )
    elif status >= 500:
        message = f"the control plane answered {method} {path} with {status}: {_reason(response)}"
    else:
        message = f"{method} {path}: {_reason(response)}"
    return ApiError.answered(status, _code(response), [message], reason=reason)


def _reason(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e) for e in errors)
        if "detail" in body:
            return str(body["detail"])
    return response.text.strip()[:200] or response.reason_phrase


def _code(response: httpx.Response) -> str:
    """The ``code`` of an error body (a row of the API's table), else ``http``."""
    try:
        body = response.json()
    except ValueError:
        return "http"
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else "http"


def _refusal(response: httpx.Response) -> str | None:
    """The ``reason`` of a 401 body."""
    try:
        body = response.json()
    except ValueError:
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else None


def _text(value: object) -> str | None:
    return str(value) if value else None


def _first(value: object) -> str | None:
    """The first address of a list of them (``xdsAddresses``); None without one."""
    return _text(value[0]) if isinstance(value, list) and value else None
