"""How the registry's records are stored: their namespace, labels and manifests (the kinds
``JoinToken`` and ``Agent`` are defined in gossamer.model.internal, with every other kind)."""

from __future__ import annotations

from gossamer.model.internal import Agent, AgentSpec, JoinToken, JoinTokenSpec, Sha256
from gossamer.types import API_VERSION, OWNER_LABEL, SYSTEM_NAMESPACE

#: the namespace registry records live in (users' resources are elsewhere)
REGISTRY_NAMESPACE = SYSTEM_NAMESPACE
#: set on every Workload an agent registers, next to ``OWNER_LABEL`` (the agent's id)
MANAGED_BY_LABEL = "gossamer.dev/managed-by"

__all__ = ["Agent", "AgentSpec", "JoinToken", "JoinTokenSpec", "Sha256", "record_manifest"]


def record_manifest(
    kind: str, name: str, agent_id: str, spec: dict[str, object]
) -> dict[str, object]:
    """A registry record's manifest, labelled as ``agent_id``'s."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": REGISTRY_NAMESPACE,
            "labels": {OWNER_LABEL: agent_id},
        },
        "spec": spec,
    }
