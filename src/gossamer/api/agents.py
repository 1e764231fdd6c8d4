"""Routes of the agent protocol (docs/agent-protocol.md): join tokens, joining, an agent's
Workloads, health and dependency addresses (Bearer credential), and revocation.

Operators' calls carry an operator token (``gossamer.api.auth``); agent calls carry
``Authorization: Bearer <credential>``; a missing, wrong or revoked
credential, an unknown agent, and an unknown, used or expired join token, answer 401 with one
line saying why and a ``reason`` an agent acts on (only ``revoked`` stops it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from gossamer.api.agent_bodies import (
    AgentBody,
    AgentList,
    EnvResponse,
    HealthRequest,
    HealthResponse,
    JoinRequest,
    JoinResponse,
    ReadyResponse,
    RevokedBody,
    RevokeResponse,
    ScopeBody,
    TokenBody,
    TokenList,
    TokenRequest,
    TokenResponse,
    WorkloadEnvBody,
    WorkloadsRequest,
    WorkloadsResponse,
)
from gossamer.api.auth import Authenticator, bearer, require_operator
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import ApplyResponse, ErrorBody
from gossamer.ca.trust import TRUST_BUNDLE_PATH
from gossamer.errors import AuthReason
from gossamer.registry import Registry
from gossamer.registry.scope import parse_scope


class UnauthorizedBody(ErrorBody):
    """A 401: ``code`` is ``unauthorized``; ``reason`` says which refusal it is."""

    reason: AuthReason


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": UnauthorizedBody if code == 401 else ErrorBody, "description": text}
    for code, text in (
        (
            401,
            "unknown, used or expired join token; missing or wrong credential, unknown "
            "agent (e.g. the control plane's store was lost), or revoked agent",
        ),
        (
            403,
            "a Workload outside what the agent's join token allows (service, namespace or "
            "address): nothing was changed",
        ),
        (404, "no such agent or host"),
        (409, "a Workload is another agent's or a user's; or the host already has an agent"),
        (422, "invalid input: nothing was changed"),
        (503, "still loading, or the store could not make the change durable"),
        (504, "stored, but not every affected proxy ACKed in time"),
    )
}

Authorization = Annotated[
    str | None, Header(description="Bearer <credential>, as the agent got it when it joined")
]
Wait = Annotated[bool, Query(description="return once every proxy whose config changed ACKed")]
Timeout = Annotated[
    float,
    Query(alias="timeout", gt=0, le=600, description="seconds to wait for ACKs, with wait=true"),
]


#: the public answer saying where the control plane serves xDS
XDS_ADDRESSES_PATH = "/xds-addresses"


@dataclass(frozen=True)
class Discovery:
    """What a host learns at join besides its credential (the server sets it in
    ``app.state.discovery`` as a callable)."""

    trust_bundle_pem: bytes
    xds: str | None
    xds_tls: str | None

    def addresses(self) -> dict[str, Any]:
        """The public ``GET /xds-addresses`` answer: lists (one address each today; more
        with replicas) beside the single fields the join answer has always carried."""
        found: dict[str, Any] = {
            "xdsAddresses": [self.xds] if self.xds else [],
            "xdsTlsAddresses": [self.xds_tls] if self.xds_tls else [],
        }
        if self.xds:
            found["xdsAddress"] = self.xds
        if self.xds_tls:
            found["xdsTlsAddress"] = self.xds_tls
        return found


def _discovery(request: Request) -> Discovery | None:
    found = getattr(request.app.state, "discovery", None)
    return found() if callable(found) else None


# -- routes ------------------------------------------------------------------------------


#: the 401 of an agent call without a credential
NO_AGENT_CREDENTIAL = (
    "no credential: send `Authorization: Bearer <credential>` with the credential the agent "
    "got when it joined"
)


def require_agent(registry: Registry) -> Any:
    """A FastAPI dependency of a route under ``/agents/{agent_id}``: the Bearer credential
    must be ``agent_id``'s (its lastSeen is updated); checked before the body is."""

    async def agent(agent_id: str, authorization: Authorization = None) -> str:
        await registry.authenticate(agent_id, bearer(authorization, NO_AGENT_CREDENTIAL))
        return agent_id

    return Depends(agent)


def agents_router(registry: Registry, auth: Authenticator | None = None) -> APIRouter:
    """Every route waits for the control plane to be ready (the registry reads its model).
    Operators' routes need an operator token, an agent's its own credential; joining needs
    only the join token in the body."""
    router = APIRouter(
        prefix="/v1",
        tags=["agents"],
        responses=_ERRORS,
        dependencies=[require_ready(registry.plane)],
    )
    operator = [require_operator(auth)]
    agent = [require_agent(registry)]

    @router.post("/tokens", response_model=TokenResponse, dependencies=operator)
    async def create_token(body: TokenRequest | None = None) -> TokenResponse:
        """A new single-use join token (operator) for a host that may serve what its
        ``scope`` says (services or anyService is required)."""
        request = body or TokenRequest()
        scope = parse_scope(request.scope.model_dump(by_alias=True))
        ttl = timedelta(seconds=request.ttl_seconds)
        token, expires = await registry.create_token(ttl, scope=scope)
        return TokenResponse(token=token, expires_at=expires, scope=ScopeBody.of(scope))

    @router.get("/tokens", response_model=TokenList, dependencies=operator)
    async def list_tokens() -> TokenList:
        """Every join token (never the secrets): unused, used or expired (operator)."""
        return TokenList(items=[TokenBody.of(t) for t in registry.list_tokens()])

    @router.post("/agents/join", response_model=JoinResponse, response_model_exclude_none=True)
    async def join(body: JoinRequest, request: Request) -> JoinResponse:
        """Exchange a join token for an agent id and credential (the token is used up),
        the trust bundle and the xDS addresses."""
        agent_id, credential = await registry.join(body.token, body.host)
        found = _discovery(request)
        if found is None:
            return JoinResponse(agent_id=agent_id, credential=credential)
        return JoinResponse(
            agent_id=agent_id,
            credential=credential,
            trust_bundle=found.trust_bundle_pem.decode("ascii"),
            xds_tls_address=found.xds_tls,
            xds_address=found.xds,
            xds_tls_addresses=[found.xds_tls] if found.xds_tls else [],
            xds_addresses=[found.xds] if found.xds else [],
        )

    @router.get("/agents", response_model=AgentList, dependencies=operator)
    async def list_agents() -> AgentList:
        """Every agent that joined, revoked ones too (operator)."""
        return AgentList(items=[AgentBody.of(a) for a in registry.list_agents()])

    @router.get("/agents/{agent_id}", response_model=AgentBody, dependencies=agent)
    async def whoami(agent_id: str) -> AgentBody:
        """The calling agent's own record (checks its credential)."""
        return AgentBody.of(registry.info(agent_id))

    @router.post(
        "/agents/{agent_or_host}/revoke", response_model=RevokeResponse, dependencies=operator
    )
    async def revoke(agent_or_host: str, wait: Wait = False, wait_timeout: Timeout = 30.0) -> Any:
        """Revoke an agent, or every active agent of a host: its credential stops working
        and its Workloads are deleted, in one transaction per agent (operator)."""
        done = await registry.revoke(agent_or_host, wait=wait, wait_timeout=wait_timeout)
        return RevokeResponse(
            revoked=[
                RevokedBody(agent_id=r.agent_id, host=r.host, deleted=[str(k) for k in r.deleted])
                for r in done
            ]
        )

    @router.put(
        "/agents/{agent_id}/workloads", response_model=WorkloadsResponse, dependencies=agent
    )
    async def set_workloads(
        agent_id: str,
        body: WorkloadsRequest,
        wait: Wait = False,
        wait_timeout: Timeout = 30.0,
    ) -> WorkloadsResponse:
        """Make these the agent's whole set of Workloads (others it registered are deleted);
        403 for one outside its join token's scope (service, namespace, address). The
        answer carries the health check TrafficPolicies set for them."""
        result = await registry.set_workloads(
            agent_id, body.workloads, wait=wait, wait_timeout=wait_timeout
        )
        applied = ApplyResponse.of(result)
        return WorkloadsResponse(
            revision=applied.revision,
            diff=applied.diff,
            acked_by=applied.acked_by,
            health_checks=registry.health_checks(agent_id),
        )

    @router.post("/agents/{agent_id}/health", response_model=HealthResponse, dependencies=agent)
    async def set_health(
        agent_id: str,
        body: HealthRequest,
        wait: Wait = False,
        wait_timeout: Timeout = 30.0,
    ) -> HealthResponse:
        """Set spec.health of the agent's Workloads named in the body (and take its report
        of the secrets their Envoys hold); the answer carries the CA's version and the
        health checks TrafficPolicies set for them."""
        if body.secrets is not None:
            registry.report_secrets(agent_id, body.secrets)
        result = await registry.set_health(
            agent_id, body.workloads, wait=wait, wait_timeout=wait_timeout
        )
        applied = ApplyResponse.of(result)
        return HealthResponse(
            revision=applied.revision,
            diff=applied.diff,
            acked_by=applied.acked_by,
            ca_version=registry.ca_version(),
            health_checks=registry.health_checks(agent_id),
        )

    @router.get("/agents/{agent_id}/ready", response_model=ReadyResponse, dependencies=agent)
    async def ready(
        agent_id: str,
        wait_timeout: Annotated[
            float, Query(alias="timeout", gt=0, le=600, description="seconds to wait at most")
        ] = 60.0,
    ) -> ReadyResponse:
        """Wait until the agent's Workloads are healthy and every proxy that routes to them
        (its own sidecars, callers, gateways) ACKed them; for a gateway's host, until its
        gateway's proxy ACKed its newest config. ``ready: false`` with what is missing when
        ``timeout`` passes first (``gossamer agent wait-ready``)."""
        found = await registry.wait_ready(agent_id, wait_timeout)
        return ReadyResponse(ready=found.ready, acked_by=found.acked_by, waiting=found.waiting)

    @router.get("/agents/{agent_id}/env", response_model=EnvResponse, dependencies=agent)
    async def env(agent_id: str) -> EnvResponse:
        """Each of the agent's Workloads with its dependencies' stable local addresses and
        the environment variables naming them."""
        return EnvResponse(workloads=[WorkloadEnvBody.of(w) for w in registry.env(agent_id)])

    return router


def trust_bundle_router() -> APIRouter:
    """``GET /trust-bundle``: the mesh's roots (PEM), open to anyone. A client holding a
    token pinned to a root's fingerprint fetches it without sending anything secret, keeps
    the roots of that fingerprint and verifies the API against them (``gossamer.ca.trust``).
    ``GET /xds-addresses``: where xDS is served, open to anyone (the ports listen anyway),
    for a proxy without a credential (``gossamer gateway`` without ``--token``)."""
    router = APIRouter(tags=["agents"])

    @router.get(XDS_ADDRESSES_PATH)
    async def xds_addresses(request: Request) -> JSONResponse:
        found = _discovery(request)
        if found is None:
            return JSONResponse({"xdsAddresses": [], "xdsTlsAddresses": []})
        return JSONResponse(found.addresses())

    @router.get(TRUST_BUNDLE_PATH, response_class=PlainTextResponse)
    async def trust_bundle(request: Request) -> PlainTextResponse:
        found = _discovery(request)
        if found is None:
            return PlainTextResponse("this control plane has no CA\n", status_code=404)
        return PlainTextResponse(
            found.trust_bundle_pem.decode("ascii"), media_type="application/x-pem-file"
        )

    return router


def install_agents(app: FastAPI, registry: Registry, auth: Authenticator | None = None) -> None:
    """Serve the agent protocol on ``app`` (``AuthError`` answers 401 with its ``reason``:
    ``gossamer.api.errors``), and the public trust bundle."""
    app.include_router(agents_router(registry, auth))
    app.include_router(trust_bundle_router())
