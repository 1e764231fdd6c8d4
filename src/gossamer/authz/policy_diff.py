"""An AccessPolicy apply as a change to the graph in place, not a rebuild.

The graph is built in layers (``authz.engine``): the bootstrap entry, the merged
AccessPolicy resources, then the rest of the journal. When the policies change, rebuilding
means a new graph, new caches and every access list compiled again (seconds at 1000
services x 10k identities) for what is often one edge. :func:`plan` computes the difference
between the merged policies the graph holds and the new ones (nodes, assignments,
associations, prohibitions, obligations) and :meth:`PolicyDiff.apply` makes it in the
graph, in the caller's transaction, emitting only the primitive changes it makes (so only
the caches and access lists those reach are redone).

The result must be the graph a rebuild would make. It is, because a plan is refused (the
caller rebuilds) whenever the layers could interact:

- the access rights changed, or a node changed kind;
- the difference names a node, prohibition or obligation that a journal entry above the
  policies names (the journal's replay on the new policies could go differently: a
  command that then fails is skipped, a node that then exists is found);
- it creates, deletes or moves a node the layer below made (the bootstrap entry, the
  administrative nodes), or changes an association the bootstrap made;
- it is larger than a fraction of the graph (a rebuild is then as cheap).

And a difference that fails in place (e.g. it would make a cycle) is undone by the caller's
transaction and the caller rebuilds, which reports the error as a rebuild would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gossamer.authz.elements import Kind
from gossamer.authz.graph import Graph
from gossamer.authz.obligations import ObligationSet
from gossamer.authz.policy import MergedPolicy, prohibition_from_spec
from gossamer.authz.policy_layers import (
    Layers,
    obligation_key,
    obligation_names,
    prohibition_key,
    prohibition_names,
)
from gossamer.authz.policy_remerge import Touched
from gossamer.model.access_commands import Obligation, ProhibitionSpec

#: a difference touching more than this share of the graph's nodes is rebuilt instead
IN_PLACE_SHARE = 0.05
#: ... but one this small is always applied in place
IN_PLACE_MINIMUM = 64


@dataclass
class PolicyDiff:
    """The changes taking a graph holding one merged policy to one holding another."""

    #: new nodes: name -> (kind, parents), created in an order where parents come first
    created: dict[str, tuple[Kind, list[str]]] = field(default_factory=dict)
    #: removed nodes: name -> their parents in the old policy
    deleted: dict[str, list[str]] = field(default_factory=dict)
    added_parents: dict[str, list[str]] = field(default_factory=dict)
    dropped_parents: dict[str, list[str]] = field(default_factory=dict)
    dissociated: list[tuple[str, str]] = field(default_factory=list)
    associated: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    prohibitions_removed: list[str] = field(default_factory=list)
    prohibitions_added: list[ProhibitionSpec] = field(default_factory=list)
    obligations_removed: list[str] = field(default_factory=list)
    obligations_added: list[Obligation] = field(default_factory=list)
    #: the merged policy the difference leads to (set by the engine's plan)
    merged: MergedPolicy | None = None

    def __len__(self) -> int:
        return (
            len(self.created)
            + len(self.deleted)
            + sum(map(len, self.added_parents.values()))
            + sum(map(len, self.dropped_parents.values()))
            + len(self.dissociated)
            + len(self.associated)
            + len(self.prohibitions_removed)
            + len(self.prohibitions_added)
            + len(self.obligations_removed)
            + len(self.obligations_added)
        )

    def names(self) -> set[str]:
        """Every node, prohibition and obligation the difference names."""
        out: set[str] = set()
        for name, (_, parents) in self.created.items():
            out |= {name, *parents}
        for name, parents in self.deleted.items():
            out |= {name, *parents}
        for moves in (self.added_parents, self.dropped_parents):
            for name, parents in moves.items():
                out |= {name, *parents}
        for ua, target in [*self.dissociated, *self.associated]:
            out |= {ua, target}
        out |= {prohibition_key(n) for n in self.prohibitions_removed}
        for spec in self.prohibitions_added:
            out |= prohibition_names(spec)
        out |= {obligation_key(n) for n in self.obligations_removed}
        for o in self.obligations_added:
            out |= obligation_names(o)
        return out

    def moved_nodes(self) -> set[str]:
        """The nodes created, deleted or reassigned."""
        return {*self.created, *self.deleted, *self.added_parents, *self.dropped_parents}

    def apply(self, graph: Graph, obligations: ObligationSet) -> None:
        """Make the difference in ``graph``; call inside a transaction (a failure part-way
        leaves changes for the transaction to undo)."""
        for name in self.obligations_removed:
            obligations.remove(name)
        for name in self.prohibitions_removed:
            graph.remove_prohibition(name)
        for ua, target in self.dissociated:
            graph.dissociate(ua, target)
        for name, (kind, parents) in self.created.items():
            graph.create_node(name, kind, parents)
        for name, parents in self.added_parents.items():
            graph.assign(name, parents)
        for name, parents in self.dropped_parents.items():
            graph.deassign(name, parents)
        for name in _children_first(self.deleted):
            graph.delete_node(name)
        for (ua, target), rights in self.associated.items():
            graph.associate(ua, target, rights)
        for spec in self.prohibitions_added:
            graph.add_prohibition(prohibition_from_spec(graph, spec))
        for o in self.obligations_added:
            obligations.add(o)


def _children_first(deleted: dict[str, list[str]]) -> list[str]:
    """``deleted`` ordered so that a node comes before the deleted nodes it is assigned to."""
    out: list[str] = []
    done: set[str] = set()
    children: dict[str, list[str]] = {}
    for name, parents in deleted.items():
        for p in parents:
            if p in deleted:
                children.setdefault(p, []).append(name)

    def visit(name: str, path: frozenset[str]) -> None:
        if name in done or name in path:
            return
        for child in children.get(name, ()):
            visit(child, path | {name})
        done.add(name)
        out.append(name)

    for name in deleted:
        visit(name, frozenset())
    return out


def _parents_first(created: dict[str, tuple[Kind, list[str]]]) -> dict[str, tuple[Kind, list[str]]]:
    out: dict[str, tuple[Kind, list[str]]] = {}
    pending = dict(created)
    while pending:
        ready = [n for n, (_, parents) in pending.items() if all(p not in pending for p in parents)]
        if not ready:  # a cycle: the graph refuses it when applied
            ready = list(pending)
        for name in ready:
            out[name] = pending.pop(name)
    return out


def diff(old: MergedPolicy, new: MergedPolicy, touched: Touched | None = None) -> PolicyDiff | None:
    """The difference from ``old`` to ``new``; None if it cannot be made in place (the
    access rights changed, or a node changed kind). ``touched``: the only nodes and
    associations that may differ (``policy_remerge``), else every one is compared."""
    if old.rights != new.rights:
        return None
    d = PolicyDiff()
    created: dict[str, tuple[Kind, list[str]]] = {}
    names = old.nodes.keys() | new.nodes.keys() if touched is None else touched.nodes
    for name in names:
        now, was = new.nodes.get(name), old.nodes.get(name)
        if now is None:
            if was is not None:
                d.deleted[name] = was[1]
            continue
        kind, parents, _ = now
        if was is None:
            created[name] = (kind, parents)
            continue
        if was[0] != kind:
            return None
        if was[1] != parents:
            before, kept = set(was[1]), set(parents)
            added = [p for p in parents if p not in before]
            dropped = [p for p in was[1] if p not in kept]
            if added:
                d.added_parents[name] = added
            if dropped:
                d.dropped_parents[name] = dropped
    d.created = _parents_first(created)
    # what still names a deleted node is made again, so that it fails as in a rebuild
    gone = d.deleted.keys()
    if touched is None:
        pairs = old.associations.keys() | new.associations.keys()
    else:
        pairs = set(touched.pairs)
        if gone:
            pairs |= {pair for pair in new.associations if not gone.isdisjoint(pair)}
    for pair in pairs:
        rights, had = new.associations.get(pair), old.associations.get(pair)
        if rights is None:
            if had is not None:
                d.dissociated.append(pair)
        elif had != rights or not gone.isdisjoint(pair):
            d.associated[pair] = rights
    old_p = {spec.name: spec for spec, _ in old.prohibitions}
    new_p = {spec.name: spec for spec, _ in new.prohibitions}
    redo_p = {n for n, s in new_p.items() if not gone.isdisjoint(prohibition_names(s))}
    d.prohibitions_removed = [n for n, s in old_p.items() if new_p.get(n) != s or n in redo_p]
    d.prohibitions_added = [s for n, s in new_p.items() if old_p.get(n) != s or n in redo_p]
    old_o = {o.name: o for o in old.obligations}
    new_o = {o.name: o for o in new.obligations}
    redo_o = {n for n, o in new_o.items() if not gone.isdisjoint(obligation_names(o))}
    d.obligations_removed = [n for n, o in old_o.items() if new_o.get(n) != o or n in redo_o]
    d.obligations_added = [o for n, o in new_o.items() if old_o.get(n) != o or n in redo_o]
    return d


def plan(
    old: MergedPolicy,
    new: MergedPolicy,
    layers: Layers,
    nodes: int,
    touched: Touched | None = None,
) -> PolicyDiff | None:
    """The difference to apply in place to a graph of ``nodes`` nodes, or None if the graph
    should be rebuilt instead (see the module docstring)."""
    d = diff(old, new, touched)
    if d is None:
        return None
    if len(d) > max(IN_PLACE_MINIMUM, IN_PLACE_SHARE * nodes):
        return None
    if d.names() & layers.above:
        return None
    if d.moved_nodes() & layers.below_nodes:
        return None
    if any(pair in layers.below_pairs for pair in [*d.dissociated, *d.associated]):
        return None
    return d
