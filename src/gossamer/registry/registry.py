"""``Registry``: agents, from joining with a token to revocation.

Every change is one ``ControlPlane.apply`` (``internal=True``, ``owner=`` the agent's id), so
registry records are durable and revisioned like every other resource and an agent's
Workloads change together with its record. Heartbeats are not changes: when an agent was
last seen, and whether its host is alive (``HostPresence``), live in memory.
Read-modify-write of one agent's records is serialised by a per-agent lock (one
control-plane process; several replicas would need the store to compare revisions).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
from pydantic import TypeAdapter

from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.route_wait import Readiness
from gossamer.controlplane.service import ApplyResult
from gossamer.errors import (
    AuthError,
    ConflictError,
    GossamerError,
    NotFoundError,
    ValidationError,
    field_errors,
)
from gossamer.model.base import Name, Resource
from gossamer.model.internal import HostScope
from gossamer.model.snapshot import ModelSnapshot
from gossamer.registry.credentials import digest, matches, new_secret
from gossamer.registry.env import WorkloadEnv
from gossamer.registry.join_tokens import DEFAULT_TOKEN_TTL, JoinTokens
from gossamer.registry.liveness import LivenessSettings
from gossamer.registry.presence import HostPresence, SharedPresence
from gossamer.registry.record_manifests import REGISTRY_NAMESPACE, Agent, record_manifest
from gossamer.registry.records import (
    AgentInfo,
    AgentState,
    Joined,
    NewToken,
    RegistryStatistics,
    Revoked,
    TokenInfo,
)
from gossamer.registry.reports import AgentReports
from gossamer.registry.sds_acks import SdsAcks
from gossamer.registry.workloads import owned_workloads
from gossamer.types import ProxyIdentity, ResourceKey

Clock = Callable[[], datetime]


_NAME: TypeAdapter[str] = TypeAdapter(Name)


def _check_host(host: str) -> None:
    try:
        _NAME.validate_python(host)
    except pydantic.ValidationError as e:
        raise ValidationError(field_errors(e, root=("host",))) from None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Registry:
    """Join tokens and agents over one ``ControlPlane``.

    ``JoinToken`` and ``Agent`` are kinds of the model like any other (``model.internal``),
    so it may be created before or after ``plane.load()``; run ``presence.run()`` only once
    the plane has loaded and serves xDS (the liveness clocks start then).
    """

    def __init__(
        self,
        plane: ControlPlane,
        *,
        clock: Clock = _utc_now,
        liveness: LivenessSettings | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        shared: SharedPresence | None = None,
    ) -> None:
        self.plane = plane
        self.clock = clock
        #: the liveness rule over agents' hosts; its ``run`` task belongs to the app
        self.presence = HostPresence(
            plane, self._active_hosts, liveness, clock=monotonic, shared=shared
        )
        #: when each agent last called (in memory: a heartbeat is not a store write)
        self._last_seen: dict[str, datetime] = {}
        self._agent_locks: dict[str, asyncio.Lock] = {}
        #: what each proxy's Envoy ACKed over SDS, from its host's heartbeats
        self.sds_acks = SdsAcks()
        #: the CA's version (``CertificateAuthority.version``) told to hosts with each
        #: heartbeat answer; set by the app once the CA is open (None: no CA)
        self.ca_version: Callable[[], str | None] = lambda: None
        #: the CA fingerprint new join tokens carry (``gossamer.ca.trust``); set by the app
        #: once the CA is open (None: bare tokens)
        self.pin: Callable[[], str | None] = lambda: None
        #: the join tokens; ``tokens.lock`` also serialises joins
        self.tokens = JoinTokens(plane, model=self._model, now=self._now, pin=lambda: self.pin())
        #: the Workloads agents register, their health and what their Envoys hold
        self.reports = AgentReports(
            plane, model=self._model, active=self._active, lock=self._lock, sds_acks=self.sds_acks
        )

    # -- reading ---------------------------------------------------------------------------

    def _model(self) -> ModelSnapshot:
        if self.plane.model is None:
            raise GossamerError("the control plane is still loading; try again in a moment")
        return self.plane.model

    def _now(self) -> datetime:
        return self.clock().astimezone(UTC).replace(microsecond=0)

    def _of_kind(self, cls: type[Resource]) -> list[Resource]:
        return [r for k, r in sorted(self._model().resources.items()) if k.kind == cls.__name__]

    def _agent(self, agent_id: str) -> Agent | None:
        found = self._model().resources.get(ResourceKey("Agent", REGISTRY_NAMESPACE, agent_id))
        return found if isinstance(found, Agent) else None

    def _lock(self, agent_id: str) -> asyncio.Lock:
        return self._agent_locks.setdefault(agent_id, asyncio.Lock())

    # -- tokens ------------------------------------------------------------------------------

    async def create_token(
        self, ttl: timedelta = DEFAULT_TOKEN_TTL, *, scope: HostScope
    ) -> NewToken:
        """A new single-use join token (``JoinTokens.create``)."""
        return await self.tokens.create(ttl, scope=scope)

    def list_tokens(self) -> list[TokenInfo]:
        return self.tokens.infos()

    # -- joining -----------------------------------------------------------------------------

    async def join(self, token: str, host: str) -> Joined:
        """Exchange a join token for an agent id and credential; the token is then used up.

        Raises ``AuthError`` for an unknown, used or expired token and ``ConflictError`` if
        ``host`` already has an active agent (revoke it first). Nothing changes on error.
        """
        _check_host(host)
        async with self.tokens.lock:
            now = self._now()
            found = self.tokens.redeemable(token, now)
            assert found.spec.scope is not None
            active = [a for a in self._agents() if a.spec.host == host and not a.spec.revoked]
            if active:
                raise ConflictError(
                    f"host {host!r} already has an active agent ({active[0].metadata.name}); "
                    f"revoke it first (`gossamer agents revoke {host}`) or join with another "
                    "host name"
                )
            agent_id = found.spec.agentId
            credential = new_secret()
            spec: dict[str, object] = {
                "host": host,
                "credentialSha256": digest(credential),
                "joinedAt": now.isoformat(),
                "lastSeen": now.isoformat(),
                "token": found.metadata.name,
                "scope": found.spec.scope.model_dump(exclude_defaults=True),
                "addresses": list(found.spec.scope.addresses),
            }
            agent = Agent.model_validate(record_manifest("Agent", agent_id, agent_id, spec))
            await self.plane.apply(
                [self.tokens.used_up(found, host, now), agent],
                owner=agent_id,
                internal=True,
            )
            self._seen(agent)
        return Joined(agent_id, credential)

    # -- agents ------------------------------------------------------------------------------

    def _agents(self) -> list[Agent]:
        return [a for a in self._of_kind(Agent) if isinstance(a, Agent)]

    def _active(self, agent_id: str) -> Agent:
        agent = self._agent(agent_id)
        if agent is None:
            raise AuthError(
                f"unknown agent: no agent {agent_id!r} has joined this control plane (its "
                "store was lost or replaced, or it runs with another --data-dir?); restore "
                "its store (docs/store.md), or join again with a token from "
                "`gossamer token create`",
                "unknown_agent",
            )
        if agent.spec.revoked:
            when = agent.spec.revokedAt.isoformat() if agent.spec.revokedAt else "earlier"
            raise AuthError(
                f"agent {agent_id} (host {agent.spec.host}) was revoked at {when}; join again "
                "with a new token from `gossamer token create`",
                "revoked",
            )
        return agent

    def _active_hosts(self) -> list[str]:
        """Hosts with an active agent: those the liveness rule judges."""
        if self.plane.model is None:
            return []
        return [a.spec.host for a in self._agents() if not a.spec.revoked]

    def _seen(self, agent: Agent) -> None:
        """A heartbeat: remember when (in memory) and tell the liveness rule."""
        self._last_seen[agent.metadata.name] = self._now()
        self.presence.heartbeat(agent.spec.host)

    async def authenticate(self, agent_id: str, credential: str) -> Agent:
        """The agent whose credential this is; ``AuthError`` if unknown, wrong or revoked.

        Counts as the agent's heartbeat (in memory; nothing is written).
        """
        async with self._lock(agent_id):
            agent = self._agent(agent_id)
            if agent is not None and not matches(credential, agent.spec.credentialSha256):
                raise AuthError(
                    f"the credential is not agent {agent_id}'s: check the agent's state "
                    "directory, or join again with a new token",
                    "wrong_credential",
                )
            agent = self._active(agent_id)
            self._seen(agent)
            return agent

    async def set_workloads(
        self,
        agent_id: str,
        manifests: Sequence[object],
        *,
        wait: bool = False,
        wait_timeout: float = 30.0,
    ) -> ApplyResult:
        """Make ``manifests`` the agent's whole set of Workloads (``AgentReports``)."""
        return await self.reports.set_workloads(
            agent_id, manifests, wait=wait, wait_timeout=wait_timeout
        )

    async def set_health(
        self,
        agent_id: str,
        health: Mapping[str, str],
        *,
        wait: bool = False,
        wait_timeout: float = 30.0,
    ) -> ApplyResult:
        """Set ``spec.health`` of the agent's Workloads named in ``health``."""
        return await self.reports.set_health(agent_id, health, wait=wait, wait_timeout=wait_timeout)

    def report_secrets(self, agent_id: str, secrets: Mapping[str, Mapping[str, str]]) -> None:
        """What each of the agent's Envoys ACKed over SDS (``AgentReports``)."""
        self.reports.report_secrets(agent_id, secrets)

    def env(self, agent_id: str) -> list[WorkloadEnv]:
        """Each of the agent's Workloads with its dependencies' stable local addresses."""
        return self.reports.env(agent_id)

    def health_checks(self, agent_id: str) -> dict[str, dict[str, Any]]:
        """The TrafficPolicy health check of each of the agent's Workloads that has one."""
        return self.reports.health_checks(agent_id)

    async def wait_ready(self, agent_id: str, within: float) -> Readiness:
        """Wait until the agent's Workloads are healthy and held by its own proxies and by
        every proxy that routes to their services (a gateway's host: its gateway's proxy
        holds its newest config); ``controlplane.route_wait``."""
        agent = self._active(agent_id)
        scope = agent.spec.scope
        if scope is not None and scope.gateway is not None:
            namespace, _, name = scope.gateway.partition("/")
            return await self.plane.route_wait.wait(
                (), [ProxyIdentity("gateway", namespace, name).node_id], within
            )
        owned = owned_workloads(self._model(), agent_id)
        own = [
            ProxyIdentity("sidecar", k.namespace, k.name).node_id
            for k, w in owned.items()
            if w.spec.sidecar
        ]
        return await self.plane.route_wait.wait(sorted(owned), own, within)

    def serves(self, agent_id: str, namespace: str, service: str) -> bool:
        """Whether the host of ``agent_id`` may get certificates for ``namespace/service``."""
        return self.reports.serves(agent_id, namespace, service)

    def info(self, agent_id: str) -> AgentInfo:
        agent = self._agent(agent_id)
        if agent is None:
            raise NotFoundError(f"no agent {agent_id!r}: see `gossamer agents list`")
        return self._info(agent)

    def _info(self, a: Agent) -> AgentInfo:
        s = a.spec
        owned = sorted(owned_workloads(self._model(), a.metadata.name))
        last_seen = self._last_seen.get(a.metadata.name, s.lastSeen)
        state: AgentState = "revoked" if s.revoked else self.presence.status(s.host)
        return AgentInfo(
            a.metadata.name,
            s.host,
            s.joinedAt,
            last_seen,
            s.revoked,
            s.revokedAt,
            owned,
            state,
            s.scope,
            list(s.addresses),
        )

    def list_agents(self) -> list[AgentInfo]:
        """Every agent that joined (revoked ones too), by host then join time."""
        agents = sorted(self._agents(), key=lambda a: (a.spec.host, a.spec.joinedAt))
        return [self._info(a) for a in agents]

    def statistics(self) -> RegistryStatistics:
        """Agents by state and unused join tokens (all zero while the plane loads)."""
        if self.plane.model is None:
            return RegistryStatistics(0, 0, 0, 0)
        states = [
            "revoked" if a.spec.revoked else self.presence.status(a.spec.host)
            for a in self._agents()
        ]
        return RegistryStatistics(
            active_agents=states.count("active"),
            unreachable_agents=states.count("unreachable"),
            revoked_agents=states.count("revoked"),
            unused_tokens=self.tokens.unused(),
        )

    # -- revoking ----------------------------------------------------------------------------

    def _targets(self, agent_or_host: str) -> list[Agent]:
        agent = self._agent(agent_or_host)
        if agent is not None:
            return [agent]
        on_host = [a for a in self._agents() if a.spec.host == agent_or_host]
        active = [a for a in on_host if not a.spec.revoked]
        if active:
            return active
        if on_host:
            names = ", ".join(a.metadata.name for a in on_host)
            raise NotFoundError(
                f"host {agent_or_host!r} has no active agent (its agents {names} are already "
                "revoked)"
            )
        raise NotFoundError(
            f"no agent or host is named {agent_or_host!r}: see `gossamer agents list`"
        )

    async def revoke(
        self, agent_or_host: str, *, wait: bool = False, wait_timeout: float = 30.0
    ) -> list[Revoked]:
        """Revoke an agent (by id), or every active agent of a host.

        Per agent, one transaction marks it revoked (its credential stops working) and
        deletes every Workload it registered. Revoking a revoked agent changes nothing.
        """
        out = []
        for target in self._targets(agent_or_host):
            agent_id = target.metadata.name
            async with self._lock(agent_id):
                agent = self._agent(agent_id)
                assert agent is not None
                gone = sorted(owned_workloads(self._model(), agent_id))
                puts: list[Resource] = []
                if not agent.spec.revoked:
                    spec = agent.spec.model_copy(update={"revoked": True, "revokedAt": self._now()})
                    puts.append(
                        Agent.model_validate(agent.model_copy(update={"spec": spec}).to_manifest())
                    )
                await self.plane.apply(
                    puts,
                    deletes=gone,
                    owner=agent_id,
                    internal=True,
                    wait=wait,
                    wait_timeout=wait_timeout,
                )
            self._last_seen.pop(agent_id, None)
            out.append(Revoked(agent_id, agent.spec.host, gone))
        self.presence.changed()
        return out
