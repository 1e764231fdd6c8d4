"""The core types a newcomer reads first: how resources and proxies are named.

Everything else in Gossamer speaks in these terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

API_VERSION = "gossamer.dev/v1"
DEFAULT_NAMESPACE = "default"

#: the label naming the agent that registered (and so owns) a resource
OWNER_LABEL = "gossamer.dev/agent"

#: A resource as the user wrote it and the store keeps it: apiVersion, kind, metadata, spec.
Manifest = dict[str, Any]


class ResourceKey(NamedTuple):
    """Identifies one stored resource."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"


ProxyKind = Literal["sidecar", "gateway"]


@dataclass(frozen=True, slots=True)
class ProxyIdentity:
    """Who an Envoy is, parsed from its xDS node (see docs/conventions.md).

    ``name`` is the Workload name for a sidecar and the Gateway name for a gateway.
    """

    kind: ProxyKind
    namespace: str
    name: str
    service: str | None = None
    host: str | None = None
    zone: str | None = None

    @property
    def node_id(self) -> str:
        return f"{self.kind}~{self.namespace}~{self.name}"

    @property
    def resource_key(self) -> ResourceKey:
        return ResourceKey(
            "Workload" if self.kind == "sidecar" else "Gateway", self.namespace, self.name
        )
