"""What the xDS server tells about the proxies it serves (read by the API, CLI and UI)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Nack:
    version: str
    message: str
    at: float  # unix time


@dataclass(frozen=True, slots=True)
class TypeStatus:
    """One resource type on one proxy's stream."""

    type: str  # "clusters" | "endpoints" | "listeners" | "extension_configs" | "routes"
    sent_version: str
    acked_version: str
    resources: int
    last_nack: Nack | None = None

    @property
    def synced(self) -> bool:
        return self.last_nack is None and self.sent_version == self.acked_version


@dataclass(frozen=True, slots=True)
class ProxyStatus:
    node_id: str
    kind: str  # "sidecar" | "gateway"
    namespace: str
    name: str
    host: str | None
    connected: bool
    protocol: str  # "sotw" | "delta"
    last_seen: float  # unix time of the last message from the proxy
    #: the newest snapshot built for this proxy is fully ACKed
    synced: bool
    #: the proxy's admin address when its bootstrap published one (for proxy-config)
    admin_address: str | None = None
    types: list[TypeStatus] = field(default_factory=list)
    #: the Envoy release the proxy announced (``Node.user_agent_build_version``), if any
    envoy_version: str | None = None

    @property
    def state(self) -> str:
        if not self.connected:
            return "disconnected"
        if any(t.last_nack for t in self.types):
            return "rejected"
        return "synced" if self.synced else "stale"
