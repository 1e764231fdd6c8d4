"""What each proxy's Envoy ACKed over SDS, as its host last reported (the ``secrets`` of
an agent's heartbeat): secret name -> version, ``identity`` versioned by the certificate's
serial (hex), ``trust-bundle`` by a digest of its PEM (``gossamer.envoy.sds.secrets``).

``proxy-status`` and ``gossamer ca status`` show it; root rotation waits on it. In memory:
a restarted control plane hears it again with each host's next heartbeat.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping


class SdsAcks:
    """agent -> node id -> secret name -> version; listeners hear of every change."""

    def __init__(self) -> None:
        self._by_agent: dict[str, dict[str, dict[str, str]]] = {}
        self._listeners: list[Callable[[], None]] = []

    def report(self, agent_id: str, acked: Mapping[str, Mapping[str, str]]) -> None:
        """``agent_id``'s whole report (node id -> secret -> version); replaces its last."""
        fresh = {node: dict(versions) for node, versions in acked.items()}
        if self._by_agent.get(agent_id, {}) == fresh:
            return
        if fresh:
            self._by_agent[agent_id] = fresh
        else:
            self._by_agent.pop(agent_id, None)
        for listener in self._listeners:
            listener()

    def forget(self, agent_id: str) -> None:
        self.report(agent_id, {})

    def of(self, node_id: str) -> Mapping[str, str]:
        """What ``node_id``'s Envoy holds ({} if no host reported it)."""
        for nodes in self._by_agent.values():
            if node_id in nodes:
                return nodes[node_id]
        return {}

    def all(self) -> dict[str, dict[str, str]]:
        return {n: dict(v) for nodes in self._by_agent.values() for n, v in nodes.items()}

    def add_listener(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
