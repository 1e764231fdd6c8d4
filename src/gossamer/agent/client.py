"""The agent's side of docs/agent-protocol.md: async calls to the control plane's registry.

The errors are the client branch of ``gossamer.errors``, shared with the CLI:
``UnreachableError`` and ``ServerError`` are transient (retry with back-off);
``RefusedError`` (401: bad, used, expired or revoked token/credential, unknown agent) carries
the control plane's ``reason``, which decides what the agent does (only ``revoked`` stops
it); ``RejectedError`` is the control plane refusing the request itself (409, 422, ...),
which retrying alone will not fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import httpx

from gossamer.errors import ApiError, ServerError, UnreachableError
from gossamer.types import Manifest

REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class IssuedCertificate:
    """The answer to a CSR: the certificate chain (leaf first), the mesh's trust bundle,
    when the leaf expires and its serial (hex)."""

    chain_pem: bytes
    trust_bundle_pem: bytes
    not_after: datetime
    serial: str


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


class RegistryClient:
    """``async with RegistryClient(server, agent_id, credential) as api:``."""

    def __init__(
        self,
        server: str,
        agent_id: str = "",
        credential: str = "",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self.agent_id = agent_id
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._http = httpx.AsyncClient(
            base_url=self.server,
            timeout=REQUEST_TIMEOUT,
            headers=headers,
            transport=transport,
            trust_env=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._http.aclose()

    async def join(self, token: str, host: str) -> tuple[str, str]:
        """Exchange a join token for ``(agent_id, credential)``."""
        body = await self._call(
            "POST",
            "/v1/agents/join",
            json={"token": token, "host": host},
            refused="the join token was refused",
        )
        try:
            return str(body["agentId"]), str(body["credential"])
        except (KeyError, TypeError):
            raise ServerError(
                200,
                "protocol",
                [
                    f"{self.server}/v1/agents/join answered {body!r} without "
                    "agentId and credential: is --server a Gossamer control "
                    "plane of a matching version?"
                ],
            ) from None

    async def put_workloads(
        self,
        manifests: Sequence[Manifest],
        *,
        wait: bool = False,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        return await self._call(
            "PUT",
            f"/v1/agents/{self.agent_id}/workloads",
            json={"workloads": list(manifests)},
            params=_wait(wait, timeout),
        )

    async def report_health(
        self,
        health: Mapping[str, str],
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        wait: bool = False,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """``secrets``: per workload (``NS/NAME``), the secrets its Envoy ACKed over SDS
        (name -> version); the control plane marks a sidecar ready for mTLS only once it
        holds its ``identity`` and ``trust-bundle``."""
        body: dict[str, Any] = {"workloads": dict(health)}
        if secrets is not None:
            body["secrets"] = {k: dict(v) for k, v in secrets.items()}
        return await self._call(
            "POST",
            f"/v1/agents/{self.agent_id}/health",
            json=body,
            params=_wait(wait, timeout),
        )

    async def request_certificate(self, service: str, csr_pem: bytes) -> IssuedCertificate:
        """Ask the control plane's CA to sign ``csr_pem`` for ``service`` (``NS/NAME``, a
        service this agent registered a workload of). A control plane without a CA answers
        404 (``RejectedError`` with ``status`` 404)."""
        path = f"/v1/agents/{self.agent_id}/certificates"
        body = await self._call(
            "POST", path, json={"service": service, "csr": csr_pem.decode("ascii")}
        )
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
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ServerError(
                200,
                "protocol",
                [
                    f"{self.server}{path} answered without a usable certificateChain, "
                    f"trustBundle, notAfter (RFC 3339) and serial (hex) ({e}): is the "
                    "control plane of a matching version?"
                ],
            ) from None

    async def env(self) -> dict[str, str]:
        """Each dependency's stable local address, as environment variables (merged over
        the agent's workloads)."""
        body = await self._call("GET", f"/v1/agents/{self.agent_id}/env")
        return env_variables(body)

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str] | None = None,
        refused: str = "the control plane refused this agent's credential",
    ) -> dict[str, Any]:
        timeout = REQUEST_TIMEOUT + float(params["timeout"]) if params else REQUEST_TIMEOUT
        try:
            response = await self._http.request(
                method, path, json=json, params=params, timeout=timeout
            )
        except httpx.TimeoutException:
            raise UnreachableError(
                f"the control plane at {self.server} did not answer {method} "
                f"{path} within {timeout:g} s"
            ) from None
        except httpx.TransportError as e:
            raise UnreachableError(
                f"cannot reach the control plane at {self.server}: "
                f"{e or type(e).__name__}; is it running? (check --server)"
            ) from None
        if response.is_error:
            raise _error(response, method, path, refused)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ServerError(
                response.status_code,
                "protocol",
                [
                    f"{self.server}{path} answered {response.text[:200]!r}, not a "
                    "JSON object: is --server a Gossamer control plane?"
                ],
            )
        return body


def _error(response: httpx.Response, method: str, path: str, refused: str) -> ApiError:
    """The error answer as the client branch's ``ApiError`` of its status, with one line
    saying what to do."""
    status, reason = response.status_code, _refusal(response)
    if status == 401 and reason == "unknown_agent":
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


def _wait(wait: bool, timeout: float) -> dict[str, str] | None:
    return {"wait": "true", "timeout": f"{timeout:g}"} if wait else None


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
