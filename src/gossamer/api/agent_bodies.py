"""The JSON bodies of the agent protocol (docs/agent-protocol.md): what operators, joining
hosts and agents send and are answered with.

They are the wire contract (and the OpenAPI schema hosts are written against), so they are
kept apart from the routes that serve them (``gossamer.api.agents``), which change for other
reasons; each ``of`` builds a body from the registry's plain value of the same thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from gossamer.api.schemas import ApplyResponse, Body
from gossamer.model.internal import HostScope
from gossamer.registry import AgentInfo, TokenInfo, WorkloadEnv
from gossamer.registry.join_tokens import DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL
from gossamer.registry.records import AgentState, TokenState

#: upper bound on Workloads one agent registers in one request
MAX_WORKLOADS = 1000


class ScopeBody(Body):
    """What the host that joins with a token may serve (docs/agent.md): ``services`` or
    ``anyService: true`` (one is required), in ``namespace`` (default ``default``) or
    ``anyNamespace``; ``addresses`` (IPs or CIDRs) pins its Workloads' addresses, else its
    first registration fixes them. Or ``gateway`` alone, for a gateway's host."""

    services: list[str] = Field(default_factory=list, max_length=100)
    any_service: bool = False
    namespace: str | None = None
    any_namespace: bool = False
    addresses: list[str] = Field(default_factory=list, max_length=100)
    #: ``NS/NAME`` (or ``NAME``: namespace default) of a Gateway: the host runs that
    #: gateway, registers no Workloads, and gets only that gateway's identity (no other field)
    gateway: str | None = Field(default=None, max_length=127)

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
            gateway=s.gateway,
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
    #: every root the mesh trusts (PEM): the host verifies the API with it from now on
    trust_bundle: str | None = None
    #: the control plane's xDS addresses (HOST:PORT): over mTLS, and plaintext (absent
    #: when not served); a wildcard host (0.0.0.0, ::) means the API's host
    xds_tls_address: str | None = None
    xds_address: str | None = None
    #: the same as lists (one address each today, several with replicas): a host may dial
    #: any of them; the single fields above are the first, kept for older hosts
    xds_tls_addresses: list[str] | None = None
    xds_addresses: list[str] | None = None


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


#: ``NS/NAME`` of each of the agent's Workloads whose TrafficPolicy sets a healthCheck ->
#: that check (``http``, ``interval``, ``timeout``, thresholds) and ``trafficPolicy``
#: (its ``NS/NAME``); a Workload left out has none (docs/agent-protocol.md)
HealthChecks = dict[str, dict[str, Any]]


class WorkloadsResponse(ApplyResponse):
    health_checks: HealthChecks = Field(default_factory=dict)


class HealthResponse(ApplyResponse):
    #: the CA's version (``GET /v1/ca``): a host holding a certificate issued under
    #: another one renews it now (root rotation; docs/agent-protocol.md)
    ca_version: str | None = None
    health_checks: HealthChecks = Field(default_factory=dict)


class ReadyResponse(Body):
    """``GET /v1/agents/{id}/ready``: whether the host's workloads are held by every proxy
    routing to them (``controlplane.route_wait``), and what the wait found."""

    ready: bool
    #: node ids of the proxies that ACKed: the host's own and those routing to its workloads
    acked_by: list[str] = Field(default_factory=list)
    #: what was still missing when the wait ended (empty when ready)
    waiting: list[str] = Field(default_factory=list)


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
