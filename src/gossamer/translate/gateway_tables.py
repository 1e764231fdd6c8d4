"""A gateway's route table, kept up to date in place: at 10k services a gateway routes
10,000 Routes, and a change of one Route's rules rebuilt all 10,000 virtual hosts and
their clusters' bookkeeping (~150 ms); now only the domains the changed Routes serve are
rebuilt, and the table is encoded again (gateways serving the same Routes share that
encoding: ``SharedPieces.gateway_routes``)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import TypeVar

from envoy.config.route.v3 import route_components_pb2 as rc_pb2

from gossamer.model.route import Route
from gossamer.translate.names import ClusterRef
from gossamer.translate.routes import route_configuration

T = TypeVar("T")
#: one Route's Envoy routes, the clusters they use and the cluster names they reference
RouteRules = tuple[list[rc_pb2.Route], frozenset[ClusterRef], frozenset[str]]
#: a route table shared by gateways, nameless and encoded, the clusters it uses (in
#: order) and the cluster names it references
SharedTable = tuple[bytes, tuple[ClusterRef, ...], frozenset[str]]

#: more changed Routes than this at once: the table is built afresh
PATCH_AT_MOST = 64


class VhostTable:
    """A gateway's nameless route table (a virtual host per domain, in domain order) and
    what built it, so that the next one can be patched from it (``patched``)."""

    def __init__(
        self,
        key: tuple[Hashable, ...],
        hosts: Sequence[str],
        routes: Sequence[Route],
        rules: Sequence[RouteRules],
    ) -> None:
        #: what every rule read besides its Route (the Service generation, the Mesh, the
        #: TrafficPolicy generation) and the gateway's hosts: patched only under the same
        self.key = key
        self._hosts = list(hosts)
        self.routes = tuple(routes)
        self.rules = list(rules)
        serving: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(self.routes):
            for d in self._domains(r):
                serving[d].append(i)
        #: domain -> the Routes serving it (their indexes, in order), in domain order
        self._serving = dict(sorted(serving.items()))
        self._at = {d: i for i, d in enumerate(self._serving)}
        self.table = route_configuration("", [(d, [d], self._rules_for(d)) for d in self._serving])
        self._used: Counter[ClusterRef] = Counter(cr for r in self.rules for cr in r[1])
        self._refs: Counter[str] = Counter(n for r in self.rules for n in r[2])
        self.shared: SharedTable = (
            self.table.SerializeToString(deterministic=True),
            tuple(sorted(self._used)),
            frozenset(self._refs),
        )

    def _domains(self, r: Route) -> list[str]:
        return self._hosts if r.spec.hosts == ["*"] else r.spec.hosts

    def _rules_for(self, domain: str) -> list[rc_pb2.Route]:
        return [route for i in self._serving[domain] for route in self.rules[i][0]]

    def patched(
        self,
        key: tuple[Hashable, ...],
        routes: Sequence[Route],
        rules_of: Callable[[Route], RouteRules],
    ) -> SharedTable | None:
        """The table of ``routes`` under ``key``, patched in place from this one when only
        a few Routes changed (the same number of Routes, each changed one serving the same
        domains); None when it must be built afresh."""
        if key != self.key or len(routes) != len(self.routes):
            return None
        changed = [
            i for i, (a, b) in enumerate(zip(self.routes, routes, strict=True)) if a is not b
        ]
        if len(changed) > PATCH_AT_MOST or any(
            self._domains(self.routes[i]) != self._domains(routes[i]) for i in changed
        ):
            return None
        fresh = [rules_of(routes[i]) for i in changed]  # (may raise: nothing changed yet)
        touched: dict[str, None] = {}
        regrouped = False
        for i, new in zip(changed, fresh, strict=True):
            old = self.rules[i]
            regrouped |= _moved(self._used, old[1], new[1])
            regrouped |= _moved(self._refs, old[2], new[2])
            self.rules[i] = new
            touched.update(dict.fromkeys(self._domains(routes[i])))
        self.routes = tuple(routes)
        for d in touched:
            vhost = self.table.virtual_hosts[self._at[d]]
            del vhost.routes[:]
            vhost.routes.extend(self._rules_for(d))
        _, used, refs = self.shared
        if regrouped:
            used, refs = tuple(sorted(self._used)), frozenset(self._refs)
        self.shared = (self.table.SerializeToString(deterministic=True), used, refs)
        return self.shared


def _moved(counts: Counter[T], old: Iterable[T], new: Iterable[T]) -> bool:
    """Put ``new`` in ``counts`` and take ``old`` out; whether its keys changed."""
    changed = False
    for k in new:
        changed |= k not in counts
        counts[k] += 1
    for k in old:
        counts[k] -= 1
        if not counts[k]:
            del counts[k]
            changed = True
    return changed
