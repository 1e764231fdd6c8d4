"""Routes of the agent protocol (docs/agent-protocol.md): join tokens, joining, an agent's
Workloads, health and dependency addresses (Bearer credential), and revocation.

Operators' calls carry an operator token (``gossamer.api.auth``); agent calls carry
``Authorization: Bearer <credential>``; a missing, wrong or revoked
credential, an unknown agent, and an unknown, used or expired join token, answer 401 with one
line saying why and a ``reason`` an agent acts on (only ``revoked`` stops it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Query
from pydantic import Field

from gossamer.api.auth import Authenticator, bearer, require_operator
from gossamer.api.readiness import require_ready
from gossamer.api.schemas import ApplyResponse, Body, ErrorBody
from gossamer.errors import AuthReason
from gossamer.model.internal import HostScope
from gossamer.registry import AgentInfo, Registry, TokenInfo, WorkloadEnv
from gossamer.registry.records import AgentState, TokenState
from gossamer.registry.registry import DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL
from gossamer.registry.scope import parse_scope

#: upper bound on Workloads one agent registers in one request
MAX_WORKLOADS = 1000


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


# -- bodies ------------------------------------------------------------------------------


class ScopeBody(Body):
    """What the host that joins with a token may serve (docs/agent.md): ``services`` or
    ``anyService: true`` (one is required), in ``namespace`` (default ``default``) or
    ``anyNamespace``; ``addresses`` (IPs or CIDRs) pins its Workloads' addresses, else its
    first registration fixes them."""

    services: list[str] = Field(default_factory=list, max_length=100)
    any_service: bool = False
    namespace: str | None = None
    any_namespace: bool = False
    addresses: list[str] = Field(default_factory=list, max_length=100)

    @classmethod
    def maybe(cls, s: HostScope | None) -> ScopeBody | None:
        return None if s is None else cls.of(s)

    @classmethod
    def of(cls, s: HostScope) -> ScopeBody:
        return cls(
            services=list(s.services),
            any_service=s.anyService,
            namespace=s.namespace,
            any_namespace=s.anyNamespace,
            addresses=list(s.addresses),
        )


class TokenRequest(Body):
    ttl_seconds: int = Field(
        default=int(DEFAULT_TOKEN_TTL.total_seconds()),
        ge=1,
        le=int(MAX_TOKEN_TTL.total_seconds()),
    )
    #: required in substance: an empty scope is refused, naming services and anyService
    scope: ScopeBody = Field(default_factory=ScopeBody)


class TokenResponse(Body):
    #: the secret: shown only now
    token: str
    expires_at: datetime
    scope: ScopeBody


class TokenBody(Body):
    name: str
    agent_id: str
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None
    state: TokenState
    #: null: created before tokens had a scope (refused at join)
    scope: ScopeBody | None = None

    @classmethod
    def of(cls, t: TokenInfo) -> TokenBody:
        return cls(
            name=t.name,
            agent_id=t.agent_id,
            expires_at=t.expires_at,
            used_at=t.used_at,
            used_by=t.used_by,
            state=t.state,
            scope=ScopeBody.maybe(t.scope),
        )


class TokenList(Body):
    items: list[TokenBody]


class JoinRequest(Body):
    token: str = Field(max_length=200)
    host: str = Field(max_length=63)


class JoinResponse(Body):
    agent_id: str
    #: the secret: shown only now; send it as ``Authorization: Bearer <credential>``
    credential: str


class AgentBody(Body):
    agent_id: str
    host: str
    joined_at: datetime
    last_seen: datetime
    revoked: bool
    revoked_at: datetime | None = None
    #: ``namespace/name`` of each Workload it registered
    workloads: list[str]
    #: active | unreachable (its host is dead by the liveness rule) | revoked
    state: AgentState = "active"
    #: what it may register (null: it joined before tokens had a scope: anything)
    scope: ScopeBody | None = None
    #: the addresses/CIDRs its Workloads may use: the token's pin, else fixed by its first
    #: registration (empty until then)
    addresses: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, a: AgentInfo) -> AgentBody:
        return cls(
            agent_id=a.agent_id,
            host=a.host,
            joined_at=a.joined_at,
            last_seen=a.last_seen,
            revoked=a.revoked,
            revoked_at=a.revoked_at,
            workloads=[f"{k.namespace}/{k.name}" for k in a.workloads],
            state=a.state,
            scope=ScopeBody.maybe(a.scope),
            addresses=list(a.addresses),
        )


class AgentList(Body):
    items: list[AgentBody]


class RevokedBody(Body):
    agent_id: str
    host: str
    #: ``Workload namespace/name`` of each Workload deleted
    deleted: list[str]


class RevokeResponse(Body):
    revoked: list[RevokedBody]


class WorkloadsRequest(Body):
    #: Workload manifests: the agent's whole set
    workloads: list[Any] = Field(max_length=MAX_WORKLOADS)


class HealthRequest(Body):
    #: Workload ``name`` (or ``namespace/name``) -> healthy | unhealthy | draining
    workloads: dict[str, str] = Field(max_length=MAX_WORKLOADS)
    #: Workload -> secret name -> version its Envoy ACKed over SDS (absent: unchanged);
    #: mTLS readiness waits on ``identity`` and ``trust-bundle`` (docs/security.md)
    secrets: dict[str, dict[str, str]] | None = Field(default=None, max_length=MAX_WORKLOADS)


class DependencyBody(Body):
    service: str
    namespace: str
    port_name: str
    protocol: str
    #: the stable local address and port the app dials
    address: str
    port: int
    env: dict[str, str]


class WorkloadEnvBody(Body):
    namespace: str
    name: str
    service: str
    dependencies: list[DependencyBody]
    #: every dependency's variables together
    env: dict[str, str]

    @classmethod
    def of(cls, w: WorkloadEnv) -> WorkloadEnvBody:
        deps = [
            DependencyBody(
                service=d.service,
                namespace=d.namespace,
                port_name=d.port_name,
                protocol=d.protocol,
                address=d.address,
                port=d.port,
                env=d.env,
            )
            for d in w.dependencies
        ]
        return cls(
            namespace=w.namespace, name=w.name, service=w.service, dependencies=deps, env=w.env
        )


class EnvResponse(Body):
    workloads: list[WorkloadEnvBody]


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

    @router.post("/agents/join", response_model=JoinResponse)
    async def join(body: JoinRequest) -> JoinResponse:
        """Exchange a join token for an agent id and credential (the token is used up)."""
        agent_id, credential = await registry.join(body.token, body.host)
        return JoinResponse(agent_id=agent_id, credential=credential)

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

    @router.put("/agents/{agent_id}/workloads", response_model=ApplyResponse, dependencies=agent)
    async def set_workloads(
        agent_id: str,
        body: WorkloadsRequest,
        wait: Wait = False,
        wait_timeout: Timeout = 30.0,
    ) -> ApplyResponse:
        """Make these the agent's whole set of Workloads (others it registered are deleted);
        403 for one outside its join token's scope (service, namespace, address)."""
        result = await registry.set_workloads(
            agent_id, body.workloads, wait=wait, wait_timeout=wait_timeout
        )
        return ApplyResponse.of(result)

    @router.post("/agents/{agent_id}/health", response_model=ApplyResponse, dependencies=agent)
    async def set_health(
        agent_id: str,
        body: HealthRequest,
        wait: Wait = False,
        wait_timeout: Timeout = 30.0,
    ) -> ApplyResponse:
        """Set spec.health of the agent's Workloads named in the body (and take its report
        of the secrets their Envoys hold)."""
        if body.secrets is not None:
            registry.report_secrets(agent_id, body.secrets)
        result = await registry.set_health(
            agent_id, body.workloads, wait=wait, wait_timeout=wait_timeout
        )
        return ApplyResponse.of(result)

    @router.get("/agents/{agent_id}/env", response_model=EnvResponse, dependencies=agent)
    async def env(agent_id: str) -> EnvResponse:
        """Each of the agent's Workloads with its dependencies' stable local addresses and
        the environment variables naming them."""
        return EnvResponse(workloads=[WorkloadEnvBody.of(w) for w in registry.env(agent_id)])

    return router


def install_agents(app: FastAPI, registry: Registry, auth: Authenticator | None = None) -> None:
    """Serve the agent protocol on ``app`` (``AuthError`` answers 401 with its ``reason``:
    ``gossamer.api.errors``)."""
    app.include_router(agents_router(registry, auth))
