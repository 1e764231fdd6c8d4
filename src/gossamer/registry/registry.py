"""``Registry``: join tokens, agents, and the Workloads and health agents report.

Every change is one ``ControlPlane.apply`` (``internal=True``, ``owner=`` the agent's id), so
registry records are durable and revisioned like every other resource and an agent's
Workloads change together with its record. Heartbeats are not changes: when an agent was
last seen, and whether its host is alive (``HostPresence``), live in memory.
Read-modify-write of one agent's records is serialised by a per-agent lock (one
control-plane process; several replicas would need the store to compare revisions).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pydantic
from pydantic import TypeAdapter

from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.service import ApplyResult
from gossamer.errors import (
    AuthError,
    ConflictError,
    FieldError,
    GossamerError,
    NotFoundError,
    ValidationError,
    field_errors,
)
from gossamer.model.base import Name, Resource
from gossamer.model.internal import HostScope
from gossamer.model.snapshot import ModelSnapshot
from gossamer.registry.credentials import digest, matches, new_secret
from gossamer.registry.env import WorkloadEnv, workload_env
from gossamer.registry.liveness import LivenessSettings
from gossamer.registry.presence import HostPresence
from gossamer.registry.record_manifests import (
    REGISTRY_NAMESPACE,
    Agent,
    JoinToken,
    record_manifest,
)
from gossamer.registry.records import (
    AgentInfo,
    AgentState,
    Joined,
    NewToken,
    RegistryStatistics,
    Revoked,
    TokenInfo,
    TokenState,
    without_internal,
)
from gossamer.registry.scope import check_scope, fixed_addresses
from gossamer.registry.workloads import (
    holding_secrets,
    owned_workloads,
    prepare_workloads,
    with_health,
)
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET
from gossamer.types import ResourceKey

Clock = Callable[[], datetime]

#: how long a token lives unless told, and the longest it may
DEFAULT_TOKEN_TTL = timedelta(hours=1)
MAX_TOKEN_TTL = timedelta(days=30)
#: expired, unused tokens are deleted this long after they expired (at most this many at once)
TOKEN_RETENTION = timedelta(days=1)
PRUNE_BATCH = 20


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
    ) -> None:
        self.plane = plane
        self.clock = clock
        #: the liveness rule over agents' hosts; its ``run`` task belongs to the app
        self.presence = HostPresence(plane, self._active_hosts, liveness, clock=monotonic)
        #: when each agent last called (in memory: a heartbeat is not a store write)
        self._last_seen: dict[str, datetime] = {}
        self._join_lock = asyncio.Lock()
        self._agent_locks: dict[str, asyncio.Lock] = {}

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
        """A new single-use join token, valid for ``ttl``, for a host that may serve only
        what ``scope`` allows (docs/agent.md)."""
        if not timedelta(seconds=1) <= ttl <= MAX_TOKEN_TTL:
            raise ValidationError(
                [
                    FieldError(
                        f"{ttl.total_seconds():g} s is out of range: a token lives from "
                        f"1 s to {MAX_TOKEN_TTL.days} days",
                        "ttlSeconds",
                    )
                ]
            )
        await self._prune_tokens()
        async with self._join_lock:
            token = new_secret()
            hashed = digest(token)
            agent_id = f"agent-{secrets.token_hex(5)}"
            expires = self._now() + ttl
            spec: dict[str, object] = {
                "sha256": hashed,
                "agentId": agent_id,
                "expiresAt": expires.isoformat(),
                "scope": scope.model_dump(exclude_defaults=True),
            }
            record = JoinToken.model_validate(
                record_manifest("JoinToken", self._token_name(hashed), agent_id, spec)
            )
            await self.plane.apply([record], owner=agent_id, internal=True)
        return NewToken(token, expires)

    @staticmethod
    def _token_name(hashed: str) -> str:
        return f"jt-{hashed[:20]}"

    def _state(self, t: JoinToken, now: datetime) -> TokenState:
        if t.spec.usedAt is not None:
            return "used"
        return "expired" if now >= t.spec.expiresAt else "unused"

    def list_tokens(self) -> list[TokenInfo]:
        now = self._now()
        out = []
        for t in self._of_kind(JoinToken):
            assert isinstance(t, JoinToken)
            out.append(
                TokenInfo(
                    t.metadata.name,
                    t.spec.agentId,
                    t.spec.expiresAt,
                    t.spec.usedAt,
                    t.spec.usedBy,
                    self._state(t, now),
                    t.spec.scope,
                )
            )
        return out

    async def _prune_tokens(self) -> None:
        """Delete a few tokens nobody used that expired more than TOKEN_RETENTION ago."""
        cutoff = self._now() - TOKEN_RETENTION
        stale = [
            t
            for t in self._of_kind(JoinToken)
            if isinstance(t, JoinToken) and t.spec.usedAt is None and t.spec.expiresAt < cutoff
        ]
        for t in stale[:PRUNE_BATCH]:
            async with self._join_lock:
                await self.plane.apply((), deletes=[t.key], owner=t.spec.agentId, internal=True)

    # -- joining -----------------------------------------------------------------------------

    async def join(self, token: str, host: str) -> Joined:
        """Exchange a join token for an agent id and credential; the token is then used up.

        Raises ``AuthError`` for an unknown, used or expired token and ``ConflictError`` if
        ``host`` already has an active agent (revoke it first). Nothing changes on error.
        """
        _check_host(host)
        async with self._join_lock:
            now = self._now()
            found = self._model().resources.get(
                ResourceKey("JoinToken", REGISTRY_NAMESPACE, self._token_name(digest(token)))
            )
            if not isinstance(found, JoinToken) or not matches(token, found.spec.sha256):
                raise AuthError(
                    "the join token is not known to this control plane: check it was copied "
                    "whole, or create one with `gossamer token create`",
                    "token_unknown",
                )
            if found.spec.usedAt is not None:
                raise AuthError(
                    f"the join token was already used (by host {found.spec.usedBy} at "
                    f"{found.spec.usedAt.isoformat()}); tokens are single use: create a new "
                    "one with `gossamer token create`",
                    "token_used",
                )
            if now >= found.spec.expiresAt:
                raise AuthError(
                    f"the join token expired at {found.spec.expiresAt.isoformat()}; create a "
                    "new one with `gossamer token create [--ttl 1h]`",
                    "token_expired",
                )
            if found.spec.scope is None:
                raise AuthError(
                    "the join token was created before join tokens said what a host may "
                    "serve; create a new one with `gossamer token create --service NAME` "
                    "(or --any-service)",
                    "token_unknown",
                )
            active = [a for a in self._agents() if a.spec.host == host and not a.spec.revoked]
            if active:
                raise ConflictError(
                    f"host {host!r} already has an active agent ({active[0].metadata.name}); "
                    f"revoke it first (`gossamer agents revoke {host}`) or join with another "
                    "host name"
                )
            agent_id = found.spec.agentId
            credential = new_secret()
            used = found.model_copy(
                update={"spec": found.spec.model_copy(update={"usedAt": now, "usedBy": host})}
            )
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
                [JoinToken.model_validate(used.to_manifest()), agent],
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
        """Make ``manifests`` the agent's whole set of Workloads, in one transaction.

        Each must be a Workload for the agent's host, within its scope (service, namespace,
        address: ``PermissionDeniedError``); Workloads it registered before and does not
        list now are deleted. The first registration of a host whose token pinned no
        address fixes its addresses, in the same transaction. ``ValidationError``,
        ``PermissionDeniedError`` and ``ConflictError`` change nothing.
        """
        async with self._lock(agent_id):
            agent = self._active(agent_id)
            workloads = prepare_workloads(manifests, agent_id, agent.spec.host)
            check_scope(workloads, agent.spec)
            listed = {w.key for w in workloads}
            gone = [k for k in owned_workloads(self._model(), agent_id) if k not in listed]
            puts: list[Resource] = list(workloads)
            addresses = fixed_addresses(workloads, agent.spec)
            if addresses != agent.spec.addresses:
                spec = agent.spec.model_copy(update={"addresses": addresses})
                puts.append(
                    Agent.model_validate(agent.model_copy(update={"spec": spec}).to_manifest())
                )
            result = await self.plane.apply(
                puts,
                deletes=gone,
                owner=agent_id,
                internal=True,
                wait=wait,
                wait_timeout=wait_timeout,
            )
        return without_internal(result)

    async def set_health(
        self,
        agent_id: str,
        health: Mapping[str, str],
        *,
        wait: bool = False,
        wait_timeout: float = 30.0,
    ) -> ApplyResult:
        """Set ``spec.health`` of the agent's Workloads named in ``health``."""
        async with self._lock(agent_id):
            self._active(agent_id)
            updated = with_health(owned_workloads(self._model(), agent_id), health, agent_id)
            result = await self.plane.apply(
                updated,
                owner=agent_id,
                internal=True,
                wait=wait,
                wait_timeout=wait_timeout,
            )
        return without_internal(result)

    def report_secrets(self, agent_id: str, secrets: Mapping[str, Mapping[str, str]]) -> None:
        """The agent's report (with its heartbeat) of what each of its Envoys ACKed over SDS
        (Workload -> secret name -> version): a sidecar holding its ``identity`` and
        ``trust-bundle`` may be marked ready for mTLS. In memory (a restarted control plane
        hears it again within a heartbeat); ``ValidationError`` for a Workload the agent did
        not register, and nothing changes."""
        self._active(agent_id)
        owned = owned_workloads(self._model(), agent_id)
        needed = (IDENTITY_SECRET, TRUST_BUNDLE_SECRET)
        self.plane.set_secrets_held(agent_id, holding_secrets(owned, secrets, agent_id, needed))

    def env(self, agent_id: str) -> list[WorkloadEnv]:
        """Each of the agent's Workloads with its dependencies' stable local addresses."""
        self._active(agent_id)
        snap = self._model()
        return [workload_env(snap, w) for w in owned_workloads(snap, agent_id).values()]

    def serves(self, agent_id: str, namespace: str, service: str) -> bool:
        """Whether ``agent_id`` (active) registered a Workload of ``namespace/service``:
        the only identities its host may get certificates for."""
        self._active(agent_id)
        return any(
            w.metadata.namespace == namespace and w.spec.service == service
            for w in owned_workloads(self._model(), agent_id).values()
        )

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
        now = self._now()
        return RegistryStatistics(
            active_agents=states.count("active"),
            unreachable_agents=states.count("unreachable"),
            revoked_agents=states.count("revoked"),
            unused_tokens=sum(
                1
                for t in self._of_kind(JoinToken)
                if isinstance(t, JoinToken) and self._state(t, now) == "unused"
            ),
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
