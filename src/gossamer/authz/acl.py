"""Access lists: for a target, which users hold each right. What enforcement compiles.

Computed with bitsets over users instead of one decision per (user, target): every user
gets a bit; each user attribute knows the set of users that reach it (an int); a target's
list is then, per policy class and per right, the union of the user sets of the
associations on its paths, resolved for wildcards exactly as :meth:`Rights.resolve` does,
intersected over the policy classes, minus the users of each satisfied prohibition. The
result equals asking the decider for every user (a property test holds it to that).

Lists are cached per target and dropped when a change could alter them; :meth:`refresh`
recomputes the dropped ones, which is what "access lists correct again" costs after a change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from gossamer.authz.decider import Decider, TargetView
from gossamer.authz.graph import Graph, GraphChange, Kind
from gossamer.authz.prohibitions import Prohibition, satisfied
from gossamer.authz.rights import WC_ALL, WC_RESOURCE, WILDCARD_GROUPS


@dataclass(slots=True, eq=False)
class _Entry:
    #: right bit -> users (bitset over user index)
    rights: dict[int, int]
    view: TargetView
    #: subjects of the prohibitions this list applied
    subjects: set[int]


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        mask ^= low
        yield low


class AccessLists:
    """Cached access lists over a decider's graph (subscribes to the graph)."""

    #: a user attribute with at most this many users below it is handled by re-deciding
    #: those users on the affected lists, instead of recomputing the lists
    patch_limit = 32

    def __init__(self, decider: Decider, users: Iterable[int] | None = None) -> None:
        """Lists cover every user, or only ``users`` when given."""
        self.decider = decider
        self._members: set[int] | None = set(users) if users is not None else None
        self.graph: Graph = decider.graph
        self._user_bit: dict[int, int] = {}
        self._users: list[int] = []
        self._users_of: dict[int, int] = {}
        self._seeded = False
        #: nodes whose user set changed since seeding (only those may be missing and nonzero)
        self._popped: set[int] = set()
        self._relevant: list[Prohibition] | None = None
        self._memberless: set[int] = set()
        #: node -> right bit -> users granted it by associations on that node
        self._tables: dict[int, dict[int, int]] = {}
        self._lists: dict[int, _Entry] = {}
        self._dropped: set[int] = set()
        #: target -> users whose bit in that list must be recomputed
        self._pending: dict[int, set[int]] = {}
        r = self.graph.rights
        self._all = r.bit(WC_ALL)
        self._res = r.bit(WC_RESOURCE)
        self._groups = [(r.bit(w), r.mask(g)) for w, g in WILDCARD_GROUPS.items()]
        self.graph.subscribe(self)

    # ------------------------------------------------------------------ user sets
    def _bit(self, user: int) -> int:
        bit = self._user_bit.get(user)
        if bit is None:
            bit = self._user_bit[user] = 1 << len(self._users)
            self._users.append(user)
        return bit

    def users_of(self, node: int) -> int:
        """Bitset of the users that are ``node`` or reach it."""
        found = self._users_of.get(node)
        if found is not None:
            return found
        if not self._seeded:
            self._seed()
            found = self._users_of.get(node)
            if found is not None:
                return found
        g = self.graph
        members = self._members
        popped = self._popped
        memo = self._users_of
        if members is not None and node not in popped:
            return 0  # not reached when seeding, and no change since: no member below
        # iterative post-order over children (users sit at the bottom); with members,
        # a child neither seeded nor changed since has no member below it
        stack: list[tuple[int, bool]] = [(node, False)]
        while stack:
            n, expanded = stack.pop()
            if expanded:
                m = self._bit(n) if g.kind(n) == Kind.U and (members is None or n in members) else 0
                for c in g.children(n):
                    m |= memo.get(c, 0)
                memo[n] = m
            elif n not in memo:
                stack.append((n, True))
                stack.extend(
                    (c, False)
                    for c in g.children(n)
                    if c not in memo and (members is None or c in popped)
                )
        return memo[node]

    def _seed(self) -> None:
        """With a member list, fill the user sets upwards from the members: cheaper than
        walking down from broad attributes over every user below them."""
        self._seeded = True
        if self._members is None:
            return
        memo = self._users_of
        for user in sorted(self._members):
            if not self.graph.exists(user):
                continue
            bit = self._bit(user)
            for node in self._up(user):
                memo[node] = memo.get(node, 0) | bit

    def user_names(self, users: int) -> list[str]:
        # (the set bits found by str.find over the binary text: a shift per bit of a
        # 10,000-user int costs quadratic time)
        text = bin(users)
        top = len(text) - 1
        name, ids = self.graph.name, self._users
        out = []
        i = text.find("1", 2)
        while i != -1:
            out.append(name(ids[top - i]))
            i = text.find("1", i + 1)
        return sorted(out)

    # ------------------------------------------------------------------ invalidation
    def graph_changed(self, change: GraphChange) -> None:
        g = self.graph
        t = change.type
        node = change.node
        if t in ("assign", "deassign", "delete", "create"):
            if g.kind(node) in (Kind.U, Kind.UA):
                changed = self._reach_changed(node, change.other)
                for n in changed:
                    self._users_of.pop(n, None)
                self._popped |= changed
                hit = {n for ua in changed for n in g.assoc_out.get(ua, ())}
                for n in hit:
                    self._tables.pop(n, None)

                self._relevant = None
                everything = not changed.isdisjoint(self._memberless)

                def affected(e: _Entry) -> bool:
                    nodes = e.view.nodes
                    return (
                        everything
                        or any(n in nodes for n in hit)
                        or not e.subjects.isdisjoint(changed)
                    )

                self._drop(lambda e: node in e.view.nodes)  # lists *of* this node
                if (
                    self._members is not None
                    and g.kind(node) == Kind.U
                    and node not in self._members
                ):
                    pass  # not in any list
                elif g.kind(node) == Kind.U and node in self._user_bit:
                    self._patch_later([node], affected)  # one user moved: patch its bit
                elif (
                    g.kind(node) == Kind.UA
                    and (below := self.users_of(node)).bit_count() <= self.patch_limit
                ):
                    # few users below the attribute: patch their bits, keep the lists
                    self._patch_later(
                        [self._users[m.bit_length() - 1] for m in _bits(below)], affected
                    )
                else:
                    self._drop(affected)
            else:
                self._drop(lambda e: node in e.view.nodes)
        elif t in ("associate", "dissociate"):
            self._tables.pop(change.other, None)
            self._drop(lambda e: change.other in e.view.nodes)
        else:  # prohibitions, rights
            self._tables.clear()
            self._relevant = None
            self._drop(lambda e: True)
            self._memberless.clear()

    def _reach_changed(self, node: int, parent: int) -> set[int]:
        """The nodes whose set of users below them changed when ``node`` gained or lost
        ``parent`` (or appeared or disappeared, for ``parent`` < 0): those reachable through
        ``parent`` and not through another parent of ``node``."""
        if parent < 0:
            return self._up(node)
        others = {node}
        for q in self.graph.parents(node):
            if q != parent and q not in others:
                others |= self._up(q)
        return self._up(parent) - others

    def _patch_later(self, users: list[int], affected: Callable[[_Entry], bool]) -> None:
        if not users:
            return
        hit = [t for t, e in self._lists.items() if affected(e)]
        if self.graph.admin_policy_classes in hit:
            hit += [t for t, e in self._lists.items() if e.view.needs_admin]
        for target in hit:
            self._pending.setdefault(target, set()).update(users)

    def _up(self, node: int) -> set[int]:
        seen = {node}
        stack = [node]
        while stack:
            for p in self.graph.parents(stack.pop()):
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen

    def _drop(self, pred: Callable[[_Entry], bool]) -> None:
        gone = [t for t, e in self._lists.items() if pred(e)]
        if self.graph.admin_policy_classes in gone:
            gone += [t for t, e in self._lists.items() if e.view.needs_admin]
        for target in gone:
            self._pending.pop(target, None)
            if self._lists.pop(target, None) is not None:
                self._dropped.add(target)

    # ------------------------------------------------------------------ lists
    def access_list(self, target: int) -> dict[int, int]:
        """Right bit -> users holding it on ``target`` (no process)."""
        entry = self._lists.get(target)
        if entry is not None:
            if target in self._pending:
                self._patch(target, entry)
            return entry.rights
        entry = self._compute(target)
        self._lists[target] = entry
        self._dropped.discard(target)
        return entry.rights

    def _patch(self, target: int, entry: _Entry) -> None:
        g = self.graph
        for user in self._pending.pop(target):
            bit = self._user_bit[user]
            bits = self.decider.privileges(user, target) if g.exists(user) else 0
            rights = entry.rights
            for rb in list(rights):
                if not bits & rb:
                    rights[rb] &= ~bit
            while bits:
                rb = bits & -bits
                bits ^= rb
                rights[rb] = rights.get(rb, 0) | bit

    def named(self, target: int) -> dict[str, list[str]]:
        names = self.graph.rights.names
        return {
            names(r)[0]: self.user_names(u)
            for r, u in sorted(self.access_list(target).items())
            if u
        }

    def refresh(self) -> int:
        """Recompute every list dropped by changes; return how many."""
        dropped = [t for t in self._dropped if self.graph.exists(t)]
        for t in dropped:
            self.access_list(t)
        self._dropped.clear()
        for t in list(self._pending):
            entry = self._lists.get(t)
            if entry is None:
                del self._pending[t]
            else:
                self._patch(t, entry)
        return len(dropped)

    def compute_all(self, targets: Iterable[int]) -> None:
        for t in targets:
            self.access_list(t)

    def _compute(self, target: int) -> _Entry:
        g = self.graph
        effective = g.admin_policy_classes if g.is_pc(target) else target
        view = self.decider.target_view(effective)
        tokens: dict[int, dict[int, int]] = {}  # pc bit -> right/wildcard bit -> users
        assoc_in = g.assoc_in
        for node, pcmask in view.nodes.items():
            if not pcmask or node not in assoc_in:
                continue
            table = self._tables.get(node)
            if table is None:
                table = self._table(node)
            for low in _bits(pcmask):
                per = tokens.setdefault(low, {})
                for rb, users in table.items():
                    per[rb] = per.get(rb, 0) | users
        if view.needs_admin:
            admin = self.access_list(g.admin_policy_classes)
            mask = view.pcs
            while mask:
                low = mask & -mask
                mask ^= low
                per = tokens.setdefault(low, {})
                for rb, users in admin.items():
                    per[rb] = per.get(rb, 0) | users
        result = self._intersect(view.pcs, tokens)
        subjects: set[int] = set()
        for p in self._prohibitions():
            assert p.subject is not None
            if not satisfied(p, view.nodes):
                continue
            users = self.users_of(p.subject)
            subjects.add(p.subject)
            b = p.rights
            while b:
                rb = b & -b
                b ^= rb
                if rb in result:
                    result[rb] &= ~users
        return _Entry(result, view, subjects)

    def _prohibitions(self) -> list[Prohibition]:
        """Node prohibitions whose subject has users in the lists (the others change no
        list; their subjects are remembered so that users arriving below them count)."""
        if self._relevant is None:
            relevant, memberless = [], set()
            for p in self.graph.prohibitions.all():
                if p.subject is None:
                    continue
                if self.users_of(p.subject):
                    relevant.append(p)
                else:
                    memberless.add(p.subject)
            self._relevant = relevant
            self._memberless |= memberless
        return self._relevant

    def _table(self, node: int) -> dict[int, int]:
        """Right (or wildcard) bit -> users granted it by the associations on ``node``."""
        table: dict[int, int] = {}
        for ua, bits in self.graph.assoc_in[node].items():
            users = self.users_of(ua)
            if users:
                for rb in _bits(bits):
                    table[rb] = table.get(rb, 0) | users
        self._tables[node] = table
        return table

    def _intersect(self, pcs: int, tokens: dict[int, dict[int, int]]) -> dict[int, int]:
        rights = self.graph.rights
        result: dict[int, int] | None = None
        while pcs:
            low = pcs & -pcs
            pcs ^= low
            per = tokens.get(low, {})
            every = per.get(self._all, 0)
            res = per.get(self._res, 0)
            resolved: dict[int, int] = {}
            universe = 0
            for rb in per:
                universe |= rb
            if every:
                universe |= rights.admin_query_mask | rights.resource_mask
            if res:
                universe |= rights.resource_mask
            for wb, expansion in self._groups:
                if wb in per:
                    universe |= expansion
            universe &= ~rights.wildcard_mask
            while universe:
                rb = universe & -universe
                universe ^= rb
                if rb & rights.resource_mask:
                    users = per.get(rb, 0) | every | res
                else:
                    users = per.get(rb, 0)
                    for wb, expansion in self._groups:
                        if rb & expansion:
                            users |= per.get(wb, 0)
                    users = every | (users & ~res)
                if users:
                    resolved[rb] = users
            if result is None:
                result = resolved
            else:
                result = {rb: u & resolved[rb] for rb, u in result.items() if rb in resolved}
            if not result:
                return {}
        return result or {}
