"""The graph's storage: nodes in parallel lists, assignments both ways, associations both
ways; reads, and the primitive changes (each published to listeners) that the rules in
:mod:`gossamer.authz.graph` are built from.

Node ids are small ints; per-node data lives in parallel lists (no object per node), which
keeps a million-node graph affordable.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from gossamer.authz.changes import GraphChange
from gossamer.authz.elements import Kind
from gossamer.authz.journal import Journaled
from gossamer.errors import NotFoundError


class NodeTable(Journaled):
    """Nodes, assignments and associations as data; no validation here."""

    def __init__(self) -> None:
        super().__init__()
        self._ids: dict[str, int] = {}
        self._names: list[str | None] = []
        self._kinds = bytearray()
        self._parents: list[tuple[int, ...]] = []
        self._children: list[list[int] | None] = []
        self._props: dict[int, dict[str, str]] = {}
        #: UA -> target -> rights (bits), and the same indexed by target
        self.assoc_out: dict[int, dict[int, int]] = {}
        self.assoc_in: dict[int, dict[int, int]] = {}
        self._pcs: set[int] = set()

    # ----------------------------------------------------------------- reading
    def id(self, name: str, path: str = "") -> int:
        node = self._ids.get(name)
        if node is None:
            where = f"{path}: " if path else ""
            raise NotFoundError(f"{where}node {name!r} does not exist; create it first")
        return node

    def find(self, name: str) -> int | None:
        return self._ids.get(name)

    def exists(self, node: int) -> bool:
        return 0 <= node < len(self._names) and self._names[node] is not None

    def name(self, node: int) -> str:
        name = self._names[node]
        assert name is not None
        return name

    def kind(self, node: int) -> Kind:
        return Kind(self._kinds[node])

    def parents(self, node: int) -> tuple[int, ...]:
        return self._parents[node]

    def children(self, node: int) -> Sequence[int]:
        return self._children[node] or ()

    def properties(self, node: int) -> dict[str, str]:
        return dict(self._props.get(node, {}))

    def policy_classes(self) -> set[int]:
        return set(self._pcs)

    def is_pc(self, node: int) -> bool:
        return node in self._pcs

    def nodes(self, kind: Kind | None = None) -> Iterator[int]:
        for node, name in enumerate(self._names):
            if name is not None and (kind is None or self._kinds[node] == kind):
                yield node

    def __len__(self) -> int:
        return len(self._ids)

    def node_limit(self) -> int:
        """One more than the largest node id ever used (for arrays indexed by id)."""
        return len(self._names)

    def reaches(self, start: int, goal: int) -> bool:
        """True if ``goal`` is ``start`` or one of its descendants (walks parents)."""
        seen = {start}
        stack = [start]
        parents = self._parents
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            for p in parents[node]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return False

    # ----------------------------------------------------------------- primitives
    def _append_node(
        self,
        name: str,
        kind: Kind,
        parent_ids: tuple[int, ...],
        properties: dict[str, str] | None,
    ) -> int:
        node = len(self._names)
        self._ids[name] = node
        self._names.append(name)
        self._kinds.append(int(kind))
        self._parents.append(parent_ids)
        self._children.append(None)
        if properties:
            self._props[node] = dict(properties)
        for p in parent_ids:
            kids = self._children[p]
            if kids is None:
                self._children[p] = [node]
            else:
                kids.append(node)
        if kind == Kind.PC:
            self._pcs.add(node)
        return node

    def _drop_node(self, node: int, reclaim: bool = True) -> None:
        """Remove a childless node. ``reclaim`` (undoing a creation) frees the newest id
        for the next node created: listeners hear ``delete`` while the node is still
        readable, and must not ask about it afterwards (nor trust what they cached under
        its id)."""
        name = self.name(node)
        for p in self._parents[node]:
            kids = self._children[p]
            assert kids is not None
            kids.remove(node)
        self._emit(GraphChange("delete", node))
        del self._ids[name]
        self._names[node] = None
        self._parents[node] = ()
        self._props.pop(node, None)
        self._pcs.discard(node)
        if reclaim and node == len(self._names) - 1:  # undoing the newest create
            self._names.pop()
            self._kinds.pop()
            self._parents.pop()
            self._children.pop()

    def _restore_node(
        self,
        node: int,
        name: str,
        kind: Kind,
        parents: tuple[int, ...],
        props: dict[str, str] | None,
    ) -> None:
        self._ids[name] = node
        self._names[node] = name
        self._kinds[node] = int(kind)
        self._parents[node] = parents
        if props:
            self._props[node] = props
        for p in parents:
            kids = self._children[p]
            if kids is None:
                self._children[p] = [node]
            else:
                kids.append(node)
        if kind == Kind.PC:
            self._pcs.add(node)
        self._emit(GraphChange("create", node))

    def _link(self, c: int, p: int) -> None:
        self._parents[c] = (*self._parents[c], p)
        kids = self._children[p]
        if kids is None:
            self._children[p] = [c]
        else:
            kids.append(c)
        self._emit(GraphChange("assign", c, p))

    def _unlink(self, c: int, p: int) -> None:
        self._parents[c] = tuple(x for x in self._parents[c] if x != p)
        kids = self._children[p]
        assert kids is not None
        kids.remove(c)
        self._emit(GraphChange("deassign", c, p))

    def _set_assoc(self, u: int, t: int, bits: int | None) -> None:
        if bits is None:
            out = self.assoc_out[u]
            del out[t]
            if not out:
                del self.assoc_out[u]
            into = self.assoc_in[t]
            del into[u]
            if not into:
                del self.assoc_in[t]
            self._emit(GraphChange("dissociate", u, t))
        else:
            self.assoc_out.setdefault(u, {})[t] = bits
            self.assoc_in.setdefault(t, {})[u] = bits
            self._emit(GraphChange("associate", u, t))
