"""Each service's access lists, as enforcement compiles them: for the service's attribute and
each of its path prefix attributes (``mesh_names``), which service identities hold which
HTTP methods, prohibitions applied.

Read from :class:`~gossamer.authz.acl.AccessLists` (bitsets over users, cached per target,
invalidated by the graph's change events), so compiling every service again after one edge
changed costs a comparison per list that did not change; only the lists the change reached
are turned into names again. :class:`ServiceAccess` values compare by value: the control
plane republishes only the services whose value changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from operator import itemgetter

from gossamer.authz.acl import AccessLists
from gossamer.authz.changes import GraphChange
from gossamer.authz.decider import Decider
from gossamer.authz.elements import Kind
from gossamer.authz.mesh_names import covers, parse_target, path_of, prefix_error

Ref = tuple[str, str]
#: (user, the methods it holds), sorted by user
Grants = tuple[tuple[str, tuple[str, ...]], ...]
#: users compiled into Envoy: the callers a certificate can name
CALLER_PREFIX = "spiffe://"


@dataclass(frozen=True, slots=True)
class PrefixAccess:
    #: the path prefix (``path_separated_prefix``), or None for the service's attribute
    prefix: str | None
    grants: Grants


@dataclass(frozen=True, slots=True)
class ServiceAccess:
    """A service's access lists: its prefixes deepest first, then the service itself
    (``prefix`` None, always last). ``exists``: the service's attribute is in the graph."""

    service: Ref
    prefixes: tuple[PrefixAccess, ...]
    exists: bool = True

    def decide(self, user: str, method: str, path: str) -> bool:
        """Allowed as the compiled lists say (the deciding prefix per ``mesh_names``)."""
        path = path_of(path)
        for p in self.prefixes:
            if p.prefix is None or covers(p.prefix, path):
                return any(u == user and method in m for u, m in p.grants)
        return False


def empty(service: Ref) -> ServiceAccess:
    """No attribute in the graph: nobody is granted anything."""
    return ServiceAccess(service, (PrefixAccess(None, ()),), exists=False)


class ServiceAccessCompiler:
    """Service access lists over one graph (subscribes to it for its index of prefix
    attributes); build a new one when the engine swaps its graph."""

    def __init__(self, decider: Decider) -> None:
        self.decider = decider
        self.graph = decider.graph
        self.lists = AccessLists(decider)
        #: node -> (service, prefix or None) for every service and prefix attribute
        self._targets: dict[int, tuple[Ref, str | None]] = {}
        #: service -> its attribute node and prefix nodes
        self._by_service: dict[Ref, dict[str | None, int]] = {}
        #: target -> (the raw list it was converted from, the converted grants)
        self._converted: dict[int, tuple[dict[int, int], Grants]] = {}
        #: the resource rights' user sets of a list -> its grants (services in one group
        #: have equal lists: converted once); emptied when a node is deleted (a user's bit
        #: in the lists stays, and its id may come back under another name)
        self._by_content: dict[tuple[tuple[int, int], ...], Grants] = {}
        #: one tuple per set of methods, shared by every caller holding it
        self._method_sets: dict[tuple[str, ...], tuple[str, ...]] = {}
        #: prefix attributes skipped, with why (docs: a bad prefix name is refused on apply)
        self.skipped: dict[str, str] = {}
        #: changes seen since the last :meth:`take_changed`
        self._changed = True
        for node in self.graph.nodes():
            self._index(node)
        self.graph.subscribe(self)

    def _index(self, node: int) -> None:
        if self.graph.kind(node) not in (Kind.OA, Kind.O):
            return
        name = self.graph.name(node)
        parsed = parse_target(name)
        if parsed is None:
            return
        ref, prefix = parsed
        if prefix is not None and (why := prefix_error(prefix)) is not None:
            self.skipped[name] = why
            return
        self._targets[node] = (ref, prefix)
        self._by_service.setdefault(ref, {})[prefix] = node

    def graph_changed(self, change: GraphChange) -> None:
        self._changed = True
        if change.type == "create" and self.graph.exists(change.node):
            self._index(change.node)
        elif change.type == "delete":
            self._by_content.clear()
            self._converted.pop(change.node, None)
            found = self._targets.pop(change.node, None)
            if found is not None:
                ref, prefix = found
                nodes = self._by_service.get(ref, {})
                if nodes.get(prefix) == change.node:
                    del nodes[prefix]

    def take_changed(self) -> bool:
        """Whether the graph changed since the last call."""
        changed, self._changed = self._changed, False
        return changed

    def compile(self, service: Ref) -> ServiceAccess:
        nodes = self._by_service.get(service, {})
        root = nodes.get(None)
        if root is None or not self.graph.exists(root):
            return empty(service)
        prefixes = sorted((p for p in nodes if p is not None), key=len, reverse=True)
        out = [PrefixAccess(p, self._grants(nodes[p])) for p in prefixes]
        out.append(PrefixAccess(None, self._grants(root)))
        return ServiceAccess(service, tuple(out))

    def compile_all(self, services: Iterable[Ref]) -> dict[Ref, ServiceAccess]:
        return {ref: self.compile(ref) for ref in services}

    def _grants(self, target: int) -> Grants:
        raw = self.lists.access_list(target)
        cached = self._converted.get(target)
        if cached is not None and cached[0] == raw:
            return cached[1]
        mask = self.graph.rights.resource_mask
        key = tuple(sorted((bit, users) for bit, users in raw.items() if bit & mask and users))
        grants = self._by_content.get(key)
        if grants is None:
            if len(self._by_content) > 4 * len(self._targets) + 64:
                self._by_content.clear()  # a bound, not an eviction policy
            grants = self._by_content[key] = self._convert(key)
        self._converted[target] = (dict(raw), grants)
        return grants

    def _convert(self, per_bit: tuple[tuple[int, int], ...]) -> Grants:
        """(user, methods) for every caller holding some method: the users are split into
        the regions of equal method sets (bitset operations), so each caller's name is
        looked up once and callers with the same methods share one tuple."""
        rights = self.graph.rights
        anyone = 0
        for _, users in per_bit:
            anyone |= users
        regions: list[tuple[tuple[str, ...], int]] = [((), anyone)]
        for bit, users in per_bit:
            method = rights.names(bit)[0]
            split = []
            for methods, members in regions:
                if inside := members & users:
                    split.append(((*methods, method), inside))
                if outside := members & ~users:
                    split.append((methods, outside))
            regions = split
        out: list[tuple[str, tuple[str, ...]]] = []
        for methods, members in regions:
            ordered = tuple(sorted(methods))
            shared = self._method_sets.setdefault(ordered, ordered)
            out += [
                (u, shared) for u in self.lists.user_names(members) if u.startswith(CALLER_PREFIX)
            ]
        out.sort(key=itemgetter(0))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class AccessState:
    """Every service's compiled access lists as one publish round sees them (immutable; an
    unchanged service keeps its :class:`ServiceAccess` object from round to round)."""

    services: Mapping[Ref, ServiceAccess] = field(default_factory=dict)

    def of(self, service: Ref) -> ServiceAccess:
        """``service``'s lists; a service not compiled (yet) grants nothing."""
        found = self.services.get(service)
        return found if found is not None else empty(service)


#: before the engine is attached: nobody is granted anything
NO_ACCESS = AccessState()
