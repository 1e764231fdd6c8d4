"""The registry: join tokens, agents and the Workloads agents register for their hosts.

``Registry(plane)`` is the whole public surface; see docs/agent-protocol.md for the REST
contract built on it (``gossamer.api.agents``).
"""

from gossamer.model.internal import HostScope
from gossamer.registry.env import DependencyAddress, WorkloadEnv
from gossamer.registry.record_manifests import (
    MANAGED_BY_LABEL,
    REGISTRY_NAMESPACE,
    Agent,
    JoinToken,
)
from gossamer.registry.records import (
    AgentInfo,
    Joined,
    NewToken,
    RegistryStatistics,
    Revoked,
    TokenInfo,
)
from gossamer.registry.registry import Registry

__all__ = [
    "MANAGED_BY_LABEL",
    "REGISTRY_NAMESPACE",
    "Agent",
    "AgentInfo",
    "DependencyAddress",
    "HostScope",
    "JoinToken",
    "Joined",
    "NewToken",
    "Registry",
    "RegistryStatistics",
    "Revoked",
    "TokenInfo",
    "WorkloadEnv",
]
