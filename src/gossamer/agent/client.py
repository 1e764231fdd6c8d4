"""The agent's side of docs/agent-protocol.md: async calls to the control plane's registry.

The errors are the client branch of ``gossamer.errors``, shared with the CLI:
``UnreachableError`` and ``ServerError`` are transient (retry with back-off);
``RefusedError`` (401: bad, used, expired or revoked token/credential, unknown agent) carries
the control plane's ``reason``, which decides what the agent does (only ``revoked`` stops
it); ``RejectedError`` is the control plane refusing the request itself (409, 422, ...),
which retrying alone will not fix. Answers, and errors, are read by ``replies.py``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx

from gossamer.agent.replies import (
    IssuedCertificate,
    JoinAnswer,
    env_variables,
    error,
    issued_certificate,
    join_answer,
)
from gossamer.agent.trust import client_context, is_tls, pinned_roots, untrusted
from gossamer.ca.trust import token_fingerprint
from gossamer.cancel import raise_if_cancelling
from gossamer.errors import (
    ConfigError,
    ServerError,
    UnreachableError,
    UntrustedServerError,
)
from gossamer.types import Manifest

REQUEST_TIMEOUT = 10.0

log = logging.getLogger(__name__)


def split_servers(server: str) -> list[str]:
    """The control plane's URLs in ``server`` (one, or several comma-separated replicas)."""
    servers = [s.strip().rstrip("/") for s in server.split(",")]
    if not all(servers):
        raise ConfigError(
            f"--server {server!r} has an empty entry: write one URL, or several "
            "comma-separated (https://10.0.0.1:7070,https://10.0.0.2:7070)"
        )
    return servers


#: called with the trust bundle of a certificate answer when it differs from the last
TrustHook = Callable[[bytes], Awaitable[None]]


class RegistryClient:
    """``async with RegistryClient(server, agent_id, credential, verify=context) as api:``.

    ``verify``: the roots an ``https://`` server must chain to (``agent.trust``; build
    one from a Credential with ``agent.connect.open_registry``). Without it, ``join``
    verifies the server against the CA fingerprint in its token before sending it, and
    every later call on this client uses the roots it found.

    ``server`` may name several control-plane replicas, comma-separated
    (``https://10.0.0.1:7070,https://10.0.0.2:7070``; they share one CA): a call that
    cannot reach the current one, or that it refuses because it lost its store (503, code
    ``store``), is sent to the next, once to each. Joining uses the first only (a join
    token is good once).
    """

    def __init__(
        self,
        server: str,
        agent_id: str = "",
        credential: str = "",
        *,
        verify: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        trust_changed: TrustHook | None = None,
    ) -> None:
        #: the replicas, in the order given; calls go to ``server``, the current one
        self.servers = split_servers(server)
        self.server = self.servers[0]
        self.agent_id = agent_id
        self.verify = verify
        self._headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        self._transport = transport
        self._trust_changed = trust_changed
        self._bundle: bytes | None = None
        self._http = self._client()

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.server,
            timeout=REQUEST_TIMEOUT,
            headers=self._headers,
            transport=self._transport,
            trust_env=False,
            verify=self.verify if self.verify is not None else True,
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

    async def join(self, token: str, host: str) -> JoinAnswer:
        """Exchange a join token for the agent's id and credential (and what the control
        plane advertises). Over ``https://`` without ``verify``, the server must first
        prove it holds a certificate from the root the token's fingerprint names
        (``UntrustedServerError`` otherwise: the token is not sent)."""
        pin = token_fingerprint(token)
        if is_tls(self.server) and self.verify is None and self._transport is None:
            if pin is None:
                raise UntrustedServerError(
                    f"the join token carries no CA fingerprint, so the control plane at "
                    f"{self.server} cannot be verified before the token is sent: create a "
                    "new one with `gossamer token create`, or pass --ca-file "
                    "<data-dir>/ca/root-cert.pem; nothing was sent"
                )
            roots = await asyncio.to_thread(pinned_roots, self.server, pin, what="the join token")
            self.verify = client_context(roots)
            await self._http.aclose()
            self._http = self._client()
        body = await self._call(
            "POST",
            "/v1/agents/join",
            json={"token": token, "host": host},
            refused="the join token was refused",
            fail_over=False,
        )
        return join_answer(body, f"{self.server}/v1/agents/join")

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

    async def report_decisions(self, decisions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Report what this host's sidecars denied (or would have, in audit mode): records
        of ``agent.denial_receiver.parse_entry``; the answer is ``{"recorded": N}``."""
        path = f"/v1/agents/{self.agent_id}/decisions"
        return await self._call("POST", path, json={"decisions": [dict(d) for d in decisions]})

    async def request_certificate(self, service: str, csr_pem: bytes) -> IssuedCertificate:
        """Ask the control plane's CA to sign ``csr_pem`` for ``service`` (``NS/NAME``, a
        service this agent registered a workload of). A control plane without a CA answers
        404 (``RejectedError`` with ``status`` 404)."""
        path = f"/v1/agents/{self.agent_id}/certificates"
        body = await self._call(
            "POST", path, json={"service": service, "csr": csr_pem.decode("ascii")}
        )
        issued = issued_certificate(body, f"{self.server}{path}")
        await self._trust(issued.trust_bundle_pem)
        return issued

    async def _trust(self, bundle: bytes) -> None:
        """A certificate answer's trust bundle (over a verified connection): new roots are
        trusted from now on (a root rotation), and the hook keeps them."""
        if bundle == self._bundle:
            return
        self._bundle = bundle
        if self.verify is not None:
            self.verify.load_verify_locations(cadata=bundle.decode("ascii"))
        if self._trust_changed is not None:
            await self._trust_changed(bundle)

    async def whoami(self) -> dict[str, Any]:
        """This agent's own record (``GET /v1/agents/{id}``): host, state, ``scope`` (what
        its join token allows, e.g. ``{"gateway": "ns/name"}``)."""
        return await self._call("GET", f"/v1/agents/{self.agent_id}")

    async def env(self) -> dict[str, str]:
        """Each dependency's stable local address, as environment variables (merged over
        the agent's workloads)."""
        body = await self._call("GET", f"/v1/agents/{self.agent_id}/env")
        return env_variables(body)

    async def ready(self, wait: float) -> dict[str, Any]:
        """Wait up to ``wait`` s until this host's workloads are held by every proxy routing
        to them (``GET /v1/agents/{id}/ready``): ``{"ready", "ackedBy", "waiting"}``."""
        return await self._call(
            "GET", f"/v1/agents/{self.agent_id}/ready", params={"timeout": f"{wait:g}"}
        )

    async def host_requests(self, wait: float) -> list[dict[str, Any]]:
        """The long-poll (docs/agent-protocol.md, "Requests to the host"): what the control
        plane asks of this host, once it asks or after ``wait`` s (then [])."""
        body = await self._call(
            "GET", f"/v1/agents/{self.agent_id}/requests", params={"timeout": f"{wait:g}"}
        )
        requests = body.get("requests")
        return [r for r in requests if isinstance(r, dict)] if isinstance(requests, list) else []

    async def answer_request(self, request_id: str, answer: Mapping[str, Any]) -> None:
        """Answer one request: ``{"dump": {...}}`` or ``{"error": "one line"}``."""
        path = f"/v1/agents/{self.agent_id}/requests/{request_id}"
        await self._call("POST", path, json=dict(answer))

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str] | None = None,
        refused: str = "the control plane refused this agent's credential",
        fail_over: bool = True,
    ) -> dict[str, Any]:
        """``_call_one`` on the current replica, then on each of the others while a replica
        cannot be reached or lost its store; the last error if none answers."""
        tries = len(self.servers) if fail_over else 1
        for attempt in range(tries):
            try:
                return await self._call_one(method, path, json=json, params=params, refused=refused)
            except (UnreachableError, ServerError) as e:
                lost_store = isinstance(e, ServerError) and e.status == 503 and e.code == "store"
                if attempt + 1 == tries or not (isinstance(e, UnreachableError) or lost_store):
                    raise
                await self._next_server()
                log.warning(
                    "%s; trying the control plane at %s", str(e).splitlines()[0], self.server
                )
        raise AssertionError("not reached: the last attempt returns or raises")

    async def _next_server(self) -> None:
        at = self.servers.index(self.server)
        self.server = self.servers[(at + 1) % len(self.servers)]
        await self._http.aclose()
        self._http = self._client()

    async def _call_one(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict[str, str] | None = None,
        refused: str,
    ) -> dict[str, Any]:
        timeout = REQUEST_TIMEOUT + float(params["timeout"]) if params else REQUEST_TIMEOUT
        try:
            response = await self._http.request(
                method, path, json=json, params=params, timeout=timeout
            )
        except httpx.TimeoutException:
            raise_if_cancelling()
            raise UnreachableError(
                f"the control plane at {self.server} did not answer {method} "
                f"{path} within {timeout:g} s"
            ) from None
        except httpx.TransportError as e:
            raise_if_cancelling()
            if (refusal := untrusted(e, self.server)) is not None:
                raise refusal from None
            raise UnreachableError(
                f"cannot reach the control plane at {self.server}: "
                f"{e or type(e).__name__}; is it running? (check --server)"
            ) from None
        if response.is_error:
            raise error(response, method, path, refused)
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


def _wait(wait: bool, timeout: float) -> dict[str, str] | None:
    return {"wait": "true", "timeout": f"{timeout:g}"} if wait else None
