"""What the translator reads of every Route once per change of Routes: the subsets each
service is sent to, and the Routes with a rate-limited rule.

Both need every Route (a subset is known only from the Routes sending to it), so they are
gathered in one walk per Route generation, and what each Route holds is kept per Route
object: a change of one Route reads that one again, not all of them (at 10k services the
two walks took ~20 ms of each Route change, and again of the next endpoint change).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from gossamer.model.route import Route
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.translate.names import Subset, subset_of


@dataclass(frozen=True, slots=True)
class _Facts:
    #: (service, subset) each rule sends or mirrors to a subset of
    subsets: tuple[tuple[Ref, Subset], ...]
    #: a rule is rate-limited
    limited: bool


def _facts(namespace: str, route: Route) -> _Facts:
    rules = route.spec.rules
    subsets = tuple(
        ((d.namespace or namespace, d.service), subset_of(d.subset))
        for rule in rules
        for d in rule.targets()
        if d.subset
    )
    return _Facts(subsets, any(rule.rateLimit is not None for rule in rules))


class RouteIndex:
    def __init__(self) -> None:
        self._generation: object = None
        #: id of each Route of the last generation -> (it, what it holds)
        self._facts: dict[int, tuple[Route, _Facts]] = {}
        self._subsets: dict[Ref, tuple[Subset, ...]] = {}
        self._limited: tuple[Route, ...] = ()

    def subsets(self, snap: ModelSnapshot, service: Ref) -> tuple[Subset, ...]:
        """The subsets of ``service`` some Route (east-west or gateway) sends to, sorted."""
        self._update(snap)
        return self._subsets.get(service, ())

    def limited(self, snap: ModelSnapshot) -> tuple[Route, ...]:
        """The Routes with a rate-limited rule, in name order."""
        self._update(snap)
        return self._limited

    def _update(self, snap: ModelSnapshot) -> None:
        generation = snap.generation("Route")
        if generation is self._generation:
            return
        old, facts = self._facts, {}
        found: defaultdict[Ref, set[Subset]] = defaultdict(set)
        limited = []
        for (ns, _), route in snap.routes.items():
            hit = old.get(id(route))
            held = hit[1] if hit is not None and hit[0] is route else _facts(ns, route)
            facts[id(route)] = (route, held)
            for ref, subset in held.subsets:
                found[ref].add(subset)
            if held.limited:
                limited.append(route)
        self._generation, self._facts = generation, facts
        self._subsets = {ref: tuple(sorted(s)) for ref, s in found.items()}
        self._limited = tuple(limited)
