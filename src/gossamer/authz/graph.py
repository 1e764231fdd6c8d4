"""The NGAC graph: nodes, assignments (a DAG), associations, prohibitions, and the rules.

Every mutation is checked before anything changes, so a refused change leaves the graph
untouched; inside :meth:`Graph.transaction` each change also records its inverse, and a
failure anywhere in the block undoes all of it. Listeners (the decision caches) hear about
every primitive change, including undos, so caches stay correct.

Storage and reads live in :class:`gossamer.authz.nodes.NodeTable`; this module holds the
rules and the public changes. Names are unique across all kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from gossamer.authz.changes import GraphChange, GraphListener
from gossamer.authz.elements import (
    ADMIN_BASE,
    ADMIN_NODES,
    ADMIN_OBLIGATIONS,
    ADMIN_PC,
    ADMIN_POLICY_CLASSES,
    ADMIN_PROHIBITIONS,
    ALLOWED_PARENTS,
    ASSOCIATION_TARGETS,
    Kind,
)
from gossamer.authz.nodes import NodeTable
from gossamer.authz.prohibitions import Prohibition, ProhibitionIndex
from gossamer.authz.rights import HTTP_METHODS, Rights
from gossamer.errors import FieldError, NotFoundError, ValidationError


def _bad(message: str, path: str = "") -> ValidationError:
    return ValidationError([FieldError(message, path)])


class Graph(NodeTable):
    """Nodes, assignments, associations and prohibitions, with their validation rules."""

    def __init__(
        self, resource_rights: Sequence[str] = HTTP_METHODS, kept_rights: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.rights = Rights(resource_rights, kept_rights)
        self.prohibitions = ProhibitionIndex()
        self.create_node(ADMIN_PC, Kind.PC)
        self.create_node(ADMIN_BASE, Kind.OA, [ADMIN_PC])
        for name in ADMIN_NODES[2:]:
            self.create_node(name, Kind.OA, [ADMIN_BASE])
        self.admin_policy_classes = self._ids[ADMIN_POLICY_CLASSES]

    # ----------------------------------------------------------------- nodes
    def create_node(
        self,
        name: str,
        kind: Kind,
        parents: Sequence[str] = (),
        properties: dict[str, str] | None = None,
    ) -> int:
        """Create ``name`` assigned to ``parents`` (none for a policy class, else at least one)."""
        if not name or not isinstance(name, str):
            raise _bad("a node needs a non-empty name", "name")
        if name in self._ids:
            raise _bad(
                f"node {name!r} already exists; pick another name or delete it first", "name"
            )
        if kind == Kind.PC and parents:
            raise _bad("a policy class is assigned to nothing; remove its parents", "parents")
        if kind != Kind.PC and not parents:
            raise _bad(
                f"{kind.name} {name!r} must be assigned to at least one of "
                f"{'/'.join(k.name for k in ALLOWED_PARENTS[kind])} (no dangling nodes)",
                "parents",
            )
        parent_ids = tuple(dict.fromkeys(self.id(p, "parents") for p in parents))
        for i, p in enumerate(parent_ids):
            self._check_assignable(kind, name, p, f"parents[{i}]")
        node = self._append_node(name, kind, parent_ids, properties)
        self._record(lambda: self._drop_node(node))
        self._emit(GraphChange("create", node))
        return node

    def _check_assignable(self, kind: Kind, name: str, parent: int, path: str) -> None:
        pkind = self.kind(parent)
        if pkind not in ALLOWED_PARENTS[kind]:
            allowed = "/".join(k.name for k in ALLOWED_PARENTS[kind]) or "nothing"
            raise _bad(
                f"{kind.name} {name!r} cannot be assigned to {pkind.name} "
                f"{self.name(parent)!r}; a {kind.name} may be assigned to {allowed}",
                path,
            )

    def delete_node(self, name: str) -> None:
        """Delete a node that nothing is assigned to and no prohibition names; its
        assignments and associations go with it."""
        node = self.id(name, "name")
        if name in ADMIN_NODES:
            raise _bad(
                f"{name!r} belongs to the administrative policy and cannot be deleted", "name"
            )
        if self._children[node]:
            first = self.name(self.children(node)[0])
            raise _bad(
                f"cannot delete {name!r}: {len(self.children(node))} node(s) are "
                f"assigned to it (e.g. {first!r}); deassign or delete them first",
                "name",
            )
        used = self.prohibitions.referencing(node)
        if used:
            raise _bad(
                f"cannot delete {name!r}: prohibition {used[0]!r} names it; delete "
                "the prohibition first",
                "name",
            )
        with self.transaction():
            for target in list(self.assoc_out.get(node, {})):
                self.dissociate(name, self.name(target))
            for ua in list(self.assoc_in.get(node, {})):
                self.dissociate(self.name(ua), name)
            kind, parents, props = self.kind(node), self._parents[node], self._props.get(node)
            self._drop_node(node, reclaim=False)
            self._record(lambda: self._restore_node(node, name, kind, parents, props))

    # ----------------------------------------------------------------- assignments
    def assign(self, child: str, parents: Sequence[str]) -> None:
        """Assign ``child`` to each of ``parents`` (already-present assignments are kept)."""
        c = self.id(child, "child")
        kind = self.kind(c)
        new: list[int] = []
        for i, name in enumerate(parents):
            p = self.id(name, f"parents[{i}]")
            if p in self._parents[c] or p in new:
                continue
            self._check_assignable(kind, child, p, f"parents[{i}]")
            if self.reaches(p, c):
                raise _bad(
                    f"assigning {child!r} to {name!r} would make a cycle: {name!r} "
                    f"already reaches {child!r}",
                    f"parents[{i}]",
                )
            new.append(p)
        for p in new:
            self._link(c, p)
            self._record(partial(self._unlink, c, p))

    def deassign(self, child: str, parents: Sequence[str]) -> None:
        """Remove assignments; refused if ``child`` would be left assigned to nothing."""
        c = self.id(child, "child")
        gone = [self.id(n, f"parents[{i}]") for i, n in enumerate(parents)]
        gone = [p for p in dict.fromkeys(gone) if p in self._parents[c]]
        for p in gone:
            if child in ADMIN_NODES and self.name(p) in ADMIN_NODES:
                raise _bad(
                    f"{child!r} -> {self.name(p)!r} belongs to the administrative "
                    "policy and cannot be removed",
                    "parents",
                )
        if gone and len(gone) == len(self._parents[c]):
            raise _bad(
                f"deassigning {child!r} from {', '.join(self.name(p) for p in gone)} "
                "would leave it assigned to nothing (dangling); assign it elsewhere "
                "first or delete it",
                "parents",
            )
        for p in gone:
            self._unlink(c, p)
            self._record(partial(self._link, c, p))

    # ----------------------------------------------------------------- associations
    def associate(self, ua: str, target: str, rights: Sequence[str]) -> None:
        """Grant ``rights`` to ``ua`` on ``target`` (replacing an existing association)."""
        u = self.id(ua, "userAttribute")
        t = self.id(target, "target")
        if self.kind(u) != Kind.UA:
            raise _bad(
                f"{ua!r} is a {self.kind(u).name}; an association starts at a user attribute (UA)",
                "userAttribute",
            )
        if self.kind(t) not in ASSOCIATION_TARGETS:
            raise _bad(
                f"{target!r} is a {self.kind(t).name}; an association targets a UA, OA or O",
                "target",
            )
        bits = self.rights.encode(rights)
        old = self.assoc_out.get(u, {}).get(t)
        self._set_assoc(u, t, bits)
        self._record(lambda: self._set_assoc(u, t, old))

    def dissociate(self, ua: str, target: str) -> None:
        u = self.id(ua, "userAttribute")
        t = self.id(target, "target")
        old = self.assoc_out.get(u, {}).get(t)
        if old is None:
            return
        self._set_assoc(u, t, None)
        self._record(lambda: self._set_assoc(u, t, old))

    # ----------------------------------------------------------------- prohibitions
    def add_prohibition(self, p: Prohibition) -> None:
        """Add a prohibition whose nodes exist and whose subject is a U, UA or process."""
        if self.prohibitions.get(p.name) is not None:
            raise _bad(f"prohibition {p.name!r} already exists; delete it first", "name")
        if p.subject is not None and self.kind(p.subject) not in (Kind.U, Kind.UA):
            raise _bad(
                f"prohibition subject {self.name(p.subject)!r} is a "
                f"{self.kind(p.subject).name}; use a user, a user attribute or a process",
                "subject",
            )
        if p.process_user is not None and self.kind(p.process_user) != Kind.U:
            raise _bad("a process prohibition's user must be a user (U)", "subject")
        if not p.containers:
            raise _bad(
                "a prohibition needs at least one container in include or exclude", "include"
            )
        if p.rights & self.rights.wildcard_mask:
            raise _bad(
                "prohibitions deny literal rights (the reference does not expand "
                "wildcards when denying); list the rights to deny",
                "rights",
            )
        self._restore_prohibition(p)
        self._record(lambda: self._drop_prohibition(p))

    def _restore_prohibition(self, p: Prohibition) -> None:
        self.prohibitions.add(p)
        self._emit(
            GraphChange(
                "prohibition", p.subject if p.subject is not None else -1, process=p.process
            )
        )

    def remove_prohibition(self, name: str) -> None:
        p = self.prohibitions.get(name)
        if p is None:
            raise NotFoundError(f"prohibition {name!r} does not exist")
        self._drop_prohibition(p)
        self._record(lambda: self._restore_prohibition(p))

    def _drop_prohibition(self, p: Prohibition) -> None:
        self.prohibitions.remove(p.name)
        self._emit(
            GraphChange(
                "prohibition", p.subject if p.subject is not None else -1, process=p.process
            )
        )

    # ----------------------------------------------------------------- rights
    def set_resource_rights(self, names: Sequence[str]) -> None:
        """Replace the resource rights (the kept ones stay); refused while an association
        grants a dropped one."""
        old = self.rights.resource_rights
        dropped = self.rights.resource_mask & ~self.rights.mask(names) & ~self.rights.kept_mask
        for u, targets in self.assoc_out.items():
            for t, bits in targets.items():
                if bits & dropped:
                    raise _bad(
                        f"association {self.name(u)!r} -> {self.name(t)!r} grants "
                        f"{self.rights.names(bits & dropped)}; dissociate it first",
                        "accessRights",
                    )
        for p in self.prohibitions.all():
            if p.rights & dropped:
                raise _bad(
                    f"prohibition {p.name!r} denies {self.rights.names(p.rights & dropped)}"
                    "; delete it first",
                    "accessRights",
                )
        self.rights.set_resource_rights(names)
        self._record(lambda: self._restore_rights(old))
        self._emit(GraphChange("rights"))

    def _restore_rights(self, names: Sequence[str]) -> None:
        self.rights.set_resource_rights(names)
        self._emit(GraphChange("rights"))


__all__ = [
    "ADMIN_BASE",
    "ADMIN_NODES",
    "ADMIN_OBLIGATIONS",
    "ADMIN_PC",
    "ADMIN_POLICY_CLASSES",
    "ADMIN_PROHIBITIONS",
    "ALLOWED_PARENTS",
    "ASSOCIATION_TARGETS",
    "Graph",
    "GraphChange",
    "GraphListener",
    "Kind",
]
