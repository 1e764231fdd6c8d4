"""The engine's state: a graph, its decider and PAP, built from the layers the engine
keeps (``authz.engine``: the bootstrap entry, the merged AccessPolicy resources, the rest of
the journal)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gossamer.authz.decider import Decider
from gossamer.authz.graph import Graph
from gossamer.authz.pap import PAP, JournalEntry
from gossamer.authz.policy import MergedPolicy, merge
from gossamer.authz.policy import apply as apply_merged
from gossamer.authz.rights import CONTROL_PLANE_RIGHTS
from gossamer.errors import GossamerError
from gossamer.model.access_policy import AccessPolicy


@dataclass
class EngineState:
    graph: Graph
    decider: Decider
    pap: PAP
    skipped: list[str] = field(default_factory=list)
    #: the merged policies the graph holds (what an AccessPolicy apply is diffed against)
    merged: MergedPolicy | None = None
    #: the AccessPolicy resources ``merged`` was merged from
    sources: tuple[AccessPolicy, ...] = ()

    def retire(self) -> None:
        """This state was replaced: break its reference cycles (a graph holds its
        listeners, which hold the graph; the PAP and its event processor hold each other)
        so it is freed at once, not by a full collection walking every live object."""
        self.graph.clear_listeners()
        self.pap.retire()


def build_state(policies: Sequence[AccessPolicy], journal: Sequence[JournalEntry]) -> EngineState:
    merged = merge(policies)
    # the API's rights stay whatever the policies say (operators are decided on them)
    graph = Graph(merged.rights, kept_rights=CONTROL_PLANE_RIGHTS)
    decider = Decider(graph)
    pap = PAP(graph, decider)
    state = EngineState(graph, decider, pap, merged=merged, sources=tuple(policies))
    boot = [e for e in journal if e.cause == "bootstrap"]
    rest = [e for e in journal if e.cause != "bootstrap"]
    for entry in boot:
        pap.execute(None, entry.commands, cause=entry.cause, fire=False)
    apply_merged(graph, merged)
    with graph.transaction():
        for o in merged.obligations:
            pap.obligations.add(o)
    for i, entry in enumerate(rest):
        try:
            pap.execute(None, entry.commands, cause=entry.cause, fire=False)
        except GossamerError as e:
            state.skipped.append(
                f"journal entry {i + len(boot) + 1} ({entry.cause}) no longer applies: {e}"
            )
    pap.take_journal()
    return state
