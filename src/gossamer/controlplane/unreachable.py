"""``UnreachableHosts``: the model proxies see while some hosts are dead.

The liveness rule (``gossamer.registry.presence``) declares hosts unreachable; their
Workloads must then be published unhealthy, yet the store keeps what their agents reported,
which holds again once a host is back. So the change lives only here, in memory, as a view
of the model the publisher translates, and never in the model the control plane writes.
"""

from __future__ import annotations

from gossamer.model import ModelSnapshot
from gossamer.model.workload import Workload


class UnreachableHosts:
    """The hosts declared dead, and the model with their healthy Workloads unhealthy."""

    def __init__(self) -> None:
        self.hosts: frozenset[str] = frozenset()
        self._view: tuple[ModelSnapshot, frozenset[str], ModelSnapshot] | None = None
        self._marked: dict[int, tuple[Workload, Workload]] = {}

    def set(self, hosts: frozenset[str]) -> bool:
        """Make ``hosts`` the unreachable ones; whether that changed anything."""
        if hosts == self.hosts:
            return False
        self.hosts = hosts
        return True

    def view(self, model: ModelSnapshot) -> ModelSnapshot:
        """``model`` with unreachable hosts' workloads unhealthy.

        Marked copies are reused while their workload is unchanged, so a later round sees
        them as unchanged (endpoint-only patches stay small)."""
        hosts = self.hosts
        if not hosts:
            self._marked.clear()
            return model
        if self._view is not None and self._view[0] is model and self._view[1] == hosts:
            return self._view[2]
        marked: dict[int, tuple[Workload, Workload]] = {}
        for w in model.workloads.values():
            if w.spec.host in hosts and w.spec.health == "healthy":
                old = self._marked.get(id(w))
                if old is None or old[0] is not w:
                    spec = w.spec.model_copy(update={"health": "unhealthy"})
                    old = (w, w.model_copy(update={"spec": spec}))
                marked[id(w)] = old
        self._marked = marked
        view = model.with_changes([m for _, m in marked.values()]) if marked else model
        self._view = (model, hosts, view)
        return view
