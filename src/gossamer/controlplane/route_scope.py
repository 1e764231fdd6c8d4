"""Route-only changes: rebuild only the proxies a changed Route reaches.

A Route is read by the gateways it names (their route table, and the clusters and local
rate limits it uses) and, east-west, by every sidecar depending on its service (that
dependency's route table, clusters and limits); nothing else a proxy is given reads it
(the subsets a Route names become clusters of the proxies reading that Route only). So
when only Routes changed, the proxies to rebuild, in full, are the gateways a changed
Route names and the sidecars depending on the service a changed Route is for, before or
after the change. Every other proxy keeps its snapshot object.

At 1,000 services and 1,000 proxies an ingress Route's change then rebuilds the gateways,
not 990 sidecars as well (``bench/xds_scale.py``). The result equals a full rebuild (a
property test checks it, ``tests/unit/controlplane/test_route_scope.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

from gossamer.controlplane.incremental import TRANSLATED_KINDS
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.types import ProxyIdentity

#: kinds whose changes a route-scoped round does not follow (anything but Route)
_OTHERS = tuple(k for k in TRANSLATED_KINDS if k != "Route")


@dataclass(frozen=True)
class RouteChange:
    #: services a changed east-west Route is for (before or after the change)
    services: frozenset[Ref]
    #: gateways to rebuild
    gateways: frozenset[Ref]

    def reaches(self, model: ModelSnapshot, proxy: ProxyIdentity) -> bool:
        """Does ``proxy`` read one of the changed Routes (so must be rebuilt)?"""
        ref = (proxy.namespace, proxy.name)
        if proxy.kind != "sidecar":
            return ref in self.gateways
        w = model.workloads.get(ref)
        if w is None:
            return True  # (gone: its rebuild says so)
        ns = w.metadata.namespace
        return any((d.namespace or ns, d.service) in self.services for d in w.spec.dependencies)


def route_change(old: ModelSnapshot, new: ModelSnapshot) -> RouteChange | None:
    """What ``old -> new`` changed, if only Routes changed; None otherwise."""
    if old.generation("Route") is new.generation("Route"):
        return None
    if any(old.generation(k) is not new.generation(k) for k in _OTHERS):
        return None
    before, after = old.routes, new.routes
    changed = [
        r
        for ref in before.keys() | after.keys()
        if before.get(ref) is not after.get(ref)
        for r in (before.get(ref), after.get(ref))
        if r is not None
    ]
    services: set[Ref] = set()
    gateways: set[Ref] = set()
    for r in changed:
        ns = r.metadata.namespace
        if r.spec.service is not None:
            services.add((ns, r.spec.service))
        gateways.update((ns, g) for g in r.spec.gateways)
    return RouteChange(frozenset(services), frozenset(gateways))
