"""The change events the graph publishes, one per primitive change, to its listeners (the
decider's and the access lists' caches invalidate on them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

ChangeType = Literal[
    "create", "delete", "assign", "deassign", "associate", "dissociate", "prohibition", "rights"
]


@dataclass(frozen=True, slots=True)
class GraphChange:
    """One primitive change. ``node`` is the node whose descendant side changed (the
    assigned child, the association's UA, the prohibition's subject, the created or deleted
    node); ``other`` the parent or association target; ``process`` a process prohibition's."""

    type: ChangeType
    node: int = -1
    other: int = -1
    process: str | None = None


class GraphListener(Protocol):
    def graph_changed(self, change: GraphChange) -> None: ...
