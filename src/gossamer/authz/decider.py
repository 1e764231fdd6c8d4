"""The policy decision point: the reference semantics with caches that survive change.

Three caches, all filled lazily and kept correct by listening to the graph:

* a **user view** per subject: the set of nodes the user reaches (itself and every user
  attribute above it), the association targets it reaches with their rights (bits), and the
  node prohibitions on those nodes;
* a **target view** per target: every node on the target's paths to the policy classes
  (the target, its object attributes, the policy classes), each with the bitmask of the
  policy classes it leads to;
* per user view, the **decisions** already made, each remembering the target view it used.

A decision is the reference's procedure over the two views: for each association target
the user reaches that lies on the target's paths, its rights go to every policy class that
node leads to; wildcards are resolved per policy class; the intersection over the target's
policy classes; minus the rights of satisfied prohibitions (containers are "reached" when
they are in the target view). No graph walk happens when both views are cached.

A change to an assignment of node ``c`` changes the closure of ``c`` and of everything
above it; those are exactly the cached views whose node set contains ``c``. Changes are
collected and applied in one pass before the next decision, so a bulk load costs one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gossamer.authz.graph import Graph, GraphChange
from gossamer.authz.prohibitions import Prohibition, satisfied
from gossamer.authz.reference import Subject


@dataclass(slots=True, eq=False)
class UserView:
    nodes: set[int]
    border: dict[int, int]
    prohibitions: tuple[Prohibition, ...]
    #: target (or (target, process)) -> (rights, target view, process prohibitions)
    decisions: dict[object, tuple[int, TargetView, tuple[Prohibition, ...]]] = field(
        default_factory=dict
    )


@dataclass(slots=True, eq=False)
class TargetView:
    #: every node on the target's paths to its policy classes -> mask of those policy classes
    nodes: dict[int, int]
    #: the policy classes (mask) the target is in
    pcs: int
    #: True when the target is assigned directly to a policy class (its decisions also
    #: depend on the user's rights on PM_ADMIN:policy_classes)
    needs_admin: bool
    alive: bool = True


@dataclass(frozen=True, slots=True)
class DeciderStatistics:
    """What the decider's caches hold (each is bounded; see ``Decider``)."""

    user_views: int
    target_views: int
    #: cached decisions over all user views
    decisions: int


class Decider:
    """Cached decisions over a :class:`Graph` (subscribes to it on construction)."""

    #: invalidation walks at most walk_factor * cached views + walk_min nodes, then scans
    walk_factor = 4
    walk_min = 64

    def __init__(self, graph: Graph, max_entries: int = 4_000_000) -> None:
        """``max_entries`` bounds the cached views plus decisions; past it, the caches are
        emptied and refill from the traffic (a memory bound, not an eviction policy)."""
        self.graph = graph
        self.max_entries = max_entries
        self._entries = 0
        self._users: dict[Subject, UserView] = {}
        self._tuples: set[tuple[int, ...]] = set()  # keys of self._users that are tuples
        self._targets: dict[int, TargetView] = {}
        self._pc_bit: dict[int, int] = {}
        self._bit_pc: dict[int, int] = {}
        self._dirty_users: set[int] = set()
        self._dirty_targets: set[int] = set()
        self._clear_all = False
        graph.subscribe(self)

    # ------------------------------------------------------------------ invalidation
    def graph_changed(self, change: GraphChange) -> None:
        t = change.type
        if t in ("assign", "deassign", "delete"):
            self._dirty_users.add(change.node)
            self._dirty_targets.add(change.node)
            if t == "delete" and self.graph.is_pc(change.node):
                # decisions on a policy class are made with the view of
                # PM_ADMIN:policy_classes and cached under the class's id, which an undo
                # frees for the next node created: retire them with that view
                self._dirty_targets.add(self.graph.admin_policy_classes)
        elif t in ("associate", "dissociate"):
            self._dirty_users.add(change.node)
        elif t == "prohibition":
            if change.node >= 0:
                self._dirty_users.add(change.node)
        elif t == "rights":
            self._clear_all = True

    def _flush(self) -> None:
        if self._clear_all:
            self.clear()
            return
        if self._dirty_users:
            self._drop_views(self._dirty_users, self._users, None)
            self._dirty_users.clear()
        if self._dirty_targets:
            admin = self.graph.admin_policy_classes
            dropped = self._drop_views(self._dirty_targets, self._targets, admin)
            if dropped:
                for target, view in list(self._targets.items()):
                    if view.needs_admin:
                        view.alive = False
                        del self._targets[target]
            self._dirty_targets.clear()

    def _drop_views(self, dirty: set[int], views: dict[Any, Any], watch: int | None) -> bool:
        """Drop the cached views whose node set contains a dirty node; return whether the
        view of ``watch`` was among them.

        Those are the views of the dirty nodes and of every node below them (walking
        children now finds every such view: a path from a view's node up to a dirty node
        that a later change cut ends at a node that change made dirty). A dirty node that
        no longer exists was deleted, which needs it childless (or undone, after its
        children were): its own views are dropped and there is nothing below it to walk; its
        id may even be gone (undoing the newest creation reclaims it). When the walk grows
        past the number of cached views, scanning the views is cheaper and is done instead.
        """
        children = self.graph.children
        exists = self.graph.exists
        limit = self.walk_factor * len(views) + self.walk_min
        seen = set(dirty)
        stack = list(dirty)
        found: list[Any] = []
        while stack:
            node = stack.pop()
            if node in views:
                found.append(node)
            if not exists(node):
                continue
            for c in children(node):
                if c not in seen:
                    seen.add(c)
                    stack.append(c)
            if len(seen) > limit:
                found = [k for k, v in views.items() if not dirty.isdisjoint(v.nodes)]
                break
        else:  # views of attribute tuples (end users) are not nodes: check them
            if views is self._users:
                self._tuples &= views.keys()
                found.extend(k for k in self._tuples if not dirty.isdisjoint(views[k].nodes))
        hit = False
        for key in found:
            view = views.pop(key, None)
            if isinstance(view, TargetView):
                view.alive = False
            hit |= key == watch
        return hit

    def clear(self) -> None:
        """Forget every cached view and decision."""
        for view in self._targets.values():
            view.alive = False
        self._users.clear()
        self._tuples.clear()
        self._targets.clear()
        self._entries = 0
        self._dirty_users.clear()
        self._dirty_targets.clear()
        self._clear_all = False

    def statistics(self) -> DeciderStatistics:
        return DeciderStatistics(
            user_views=len(self._users),
            target_views=len(self._targets),
            decisions=sum(len(v.decisions) for v in self._users.values()),
        )

    # ------------------------------------------------------------------ views
    def user_view(self, subject: Subject) -> UserView:
        if self._dirty_users or self._dirty_targets or self._clear_all:
            self._flush()
        view = self._users.get(subject)
        if view is None:
            view = self._build_user(subject)
        return view

    def _build_user(self, subject: Subject) -> UserView:
        """Build (and cache) the views of ``subject`` and of every attribute above it: a
        view is the union of its parents' views plus the node's own associations and
        prohibitions."""
        g = self.graph
        views = self._users
        starts = (subject,) if isinstance(subject, int) else subject
        stack = [n for n in starts if n not in views]
        while stack:
            node = stack[-1]
            if node in views:
                stack.pop()
                continue
            missing = [p for p in g.parents(node) if p not in views]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            views[node] = self._merge_user((node,), [views[p] for p in g.parents(node)])
            self._entries += 1
        if isinstance(subject, int):
            return views[subject]
        view = views[subject] = self._merge_user((), [views[n] for n in starts])
        self._tuples.add(subject)
        return view

    def _merge_user(self, own: tuple[int, ...], parents: list[UserView]) -> UserView:
        g = self.graph
        nodes: set[int] = set(own)
        prohibitions: list[Prohibition] = []
        if len(parents) == 1 and not own:
            only = parents[0]
            return UserView(set(only.nodes), only.border, only.prohibitions)
        border: dict[int, int] = dict(parents[0].border) if parents else {}
        for i, pv in enumerate(parents):
            nodes |= pv.nodes
            prohibitions.extend(pv.prohibitions)
            if i:
                other = pv.border
                both = {t: border[t] | other[t] for t in border.keys() & other.keys()}
                border.update(other)  # at C speed; then the targets both grant get the union
                border.update(both)
        for node in own:
            out = g.assoc_out.get(node)
            if out:
                for t, bits in out.items():
                    border[t] = border.get(t, 0) | bits
            prohibitions.extend(g.prohibitions.for_subject(node))
        if len(prohibitions) > 1:
            prohibitions = list({p.name: p for p in prohibitions}.values())
        return UserView(nodes, border, tuple(prohibitions))

    def target_view(self, target: int) -> TargetView:
        if self._dirty_users or self._dirty_targets or self._clear_all:
            self._flush()
        view = self._targets.get(target)
        if view is None:
            view = self._build_target(target)
        return view

    def _build_target(self, target: int) -> TargetView:
        """Build (and cache) the views of ``target`` and of every node above it: a view is
        the union of its parents' views (C-speed dict merges) plus the node itself."""
        g = self.graph
        parents = g.parents
        is_pc = g.is_pc
        views = self._targets
        stack = [target]
        while stack:
            node = stack[-1]
            if node in views:
                stack.pop()
                continue
            missing = [p for p in parents(node) if p not in views]
            if missing:
                stack.extend(missing)
                continue
            stack.pop()
            nodes: dict[int, int] = {}
            mask = self._pc_mask(node) if is_pc(node) else 0
            needs_admin = False
            for p in parents(node):
                pv = views[p]
                nodes.update(pv.nodes)
                mask |= pv.pcs
                needs_admin |= is_pc(p)
            nodes[node] = mask
            views[node] = TargetView(nodes, mask, needs_admin)
            self._entries += 1
        return views[target]

    def _pc_mask(self, pc: int) -> int:
        bit = self._pc_bit.get(pc)
        if bit is None:
            bit = self._pc_bit[pc] = 1 << len(self._pc_bit)
            self._bit_pc[bit] = pc
        return bit

    # ------------------------------------------------------------------ decisions
    def privileges(self, subject: Subject, target: int, process: str | None = None) -> int:
        """The rights (bits) ``subject`` holds on ``target`` (node ids). ``subject`` is a
        user, or a tuple of user attributes (an end user known by its claims; order and
        repeats do not matter)."""
        if self._dirty_users or self._dirty_targets or self._clear_all:
            self._flush()
        if type(subject) is tuple:
            subject = tuple(sorted(set(subject)))
        uv = self._users.get(subject)
        if uv is None:
            uv = self._build_user(subject)
        key: object = target if process is None else (target, process)
        procs = self.graph.prohibitions.for_process(process) if process is not None else ()
        hit = uv.decisions.get(key)
        if hit is not None and hit[1].alive and hit[2] is procs:
            return hit[0]
        if self.graph.is_pc(target):
            target = self.graph.admin_policy_classes
        tv = self._targets.get(target)
        if tv is None:
            tv = self._build_target(target)
        bits = self._decide(subject, uv, tv, procs, process)
        uv.decisions[key] = (bits, tv, procs)
        self._entries += 1
        if self._entries > self.max_entries:
            self.clear()
        return bits

    def _decide(
        self,
        subject: Subject,
        uv: UserView,
        tv: TargetView,
        procs: tuple[Prohibition, ...],
        process: str | None,
    ) -> int:
        acc: dict[int, int] = {}
        nodes = tv.nodes
        border = uv.border
        for n in border.keys() & nodes.keys():  # the intersection runs in C
            mask = nodes[n]
            bits = border[n]
            while mask:
                low = mask & -mask
                acc[low] = acc.get(low, 0) | bits
                mask ^= low
        on_pcs = 0
        if tv.needs_admin:
            on_pcs = self.privileges(subject, self.graph.admin_policy_classes, process)
        resolve = self.graph.rights.resolve
        allowed = -1
        pcs = tv.pcs
        while pcs:
            low = pcs & -pcs
            allowed &= resolve(acc.get(low, 0) | on_pcs)
            pcs ^= low
            if not allowed:
                return 0
        if allowed == -1:
            return 0
        for p in uv.prohibitions:
            if satisfied(p, nodes):
                allowed &= ~p.rights
        for p in procs:
            if satisfied(p, nodes):
                allowed &= ~p.rights
        return allowed

    def check(self, subject: Subject, target: int, right: str, process: str | None = None) -> bool:
        return bool(self.privileges(subject, target, process) & self.graph.rights.bit(right))

    def satisfied_prohibitions(
        self, subject: Subject, target: int, process: str | None = None
    ) -> list[Prohibition]:
        uv = self.user_view(subject)
        tv = self.target_view(
            self.graph.admin_policy_classes if self.graph.is_pc(target) else target
        )
        procs = self.graph.prohibitions.for_process(process) if process is not None else ()
        return [p for p in (*uv.prohibitions, *procs) if satisfied(p, tv.nodes)]

    def pc_of_bit(self, bit: int) -> int:
        return self._bit_pc[bit]
