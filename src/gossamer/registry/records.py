"""What the registry answers with: plain values, no secrets except where created."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

from gossamer.controlplane.service import ApplyResult, Diff
from gossamer.model.catalog import INTERNAL_KINDS
from gossamer.model.internal import HostScope
from gossamer.types import ResourceKey


class NewToken(NamedTuple):
    #: the secret itself: shown once, stored only as a hash
    token: str
    expires_at: datetime


class Joined(NamedTuple):
    agent_id: str
    #: the agent's secret: shown once, stored only as a hash
    credential: str


TokenState = Literal["unused", "used", "expired"]
#: ``unreachable``: its host is dead by the liveness rule (docs/agent-protocol.md)
AgentState = Literal["active", "unreachable", "revoked"]


@dataclass(frozen=True, slots=True)
class TokenInfo:
    name: str
    agent_id: str
    expires_at: datetime
    used_at: datetime | None
    used_by: str | None
    state: TokenState
    #: what the host that joins with it may serve (None: created before tokens had one)
    scope: HostScope | None = None


@dataclass(frozen=True, slots=True)
class AgentInfo:
    agent_id: str
    host: str
    joined_at: datetime
    #: its last call to the control plane (kept in memory: after a control-plane restart,
    #: the last time it was written, at join)
    last_seen: datetime
    revoked: bool
    revoked_at: datetime | None
    workloads: list[ResourceKey] = field(default_factory=list)
    state: AgentState = "active"
    #: what it may register (None: joined before tokens had a scope: anything)
    scope: HostScope | None = None
    #: the addresses/CIDRs its Workloads may use (empty: not fixed yet)
    addresses: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RegistryStatistics:
    """Agents by state and join tokens still usable (``/v1/statistics`` ``registry``)."""

    active_agents: int
    #: dead by the liveness rule
    unreachable_agents: int
    revoked_agents: int
    #: created, not used yet and not expired
    unused_tokens: int


@dataclass(frozen=True, slots=True)
class Revoked:
    agent_id: str
    host: str
    #: the Workloads deleted with it
    deleted: list[ResourceKey]


def without_internal(result: ApplyResult) -> ApplyResult:
    """``result`` without the registry's own records (an agent's lastSeen, say)."""

    def keep(keys: list[ResourceKey]) -> list[ResourceKey]:
        return [k for k in keys if k.kind not in INTERNAL_KINDS]

    d = result.diff
    diff = Diff(keep(d.created), keep(d.updated), keep(d.unchanged), keep(d.deleted))
    return ApplyResult(result.revision, diff, result.acked_by)
