"""A consistent, immutable view of every resource at one store revision.

Translation reads only this; ``gossamer.model.references.check_references`` lists what is
inconsistent in one, so that an apply that would leave the mesh inconsistent is refused.
"""

from __future__ import annotations

import hashlib
import ipaddress
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from typing import Protocol

from gossamer.model.base import Resource
from gossamer.model.catalog import parse_manifest
from gossamer.model.external_service import ExternalService
from gossamer.model.gateway import Gateway
from gossamer.model.internal import ADDRESS_SEED_KEY, AddressSeed
from gossamer.model.mesh import Mesh
from gossamer.model.route import Route
from gossamer.model.service import Service, ServicePort
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.model.workload import Workload
from gossamer.types import API_VERSION, Manifest, ResourceKey

Ref = tuple[str, str]  # (namespace, name)


class StoredRecord(Protocol):
    """What a snapshot reads of one stored resource. Any store's records fit (e.g.
    ``gossamer.store.base.StoredResource``): the model knows nothing of the store."""

    @property
    def key(self) -> ResourceKey: ...

    @property
    def manifest(self) -> Manifest: ...

    @property
    def create_revision(self) -> int:
        """The revision that created the resource (older resources win address ties)."""
        ...


#: the generation of a kind no snapshot has resources of
_NO_RESOURCES = object()

#: where stable local addresses are allocated
VIP_NET = ipaddress.IPv4Network("127.128.0.0/9")
_DEFAULT_MESH = Mesh.model_validate(
    {"apiVersion": API_VERSION, "kind": "Mesh", "metadata": {"name": "default"}}
)


#: the kinds each view of a snapshot reads: ``with_changes`` carries a view computed on the
#: snapshot before into the one after when no resource of these kinds changed
_READS: dict[str, frozenset[str]] = {
    "services": frozenset({"Service"}),
    "workloads": frozenset({"Workload"}),
    "gateways": frozenset({"Gateway"}),
    "routes": frozenset({"Route"}),
    "external_services": frozenset({"ExternalService"}),
    "mesh": frozenset({"Mesh"}),
    "_workloads_by_service": frozenset({"Workload"}),
    "_routes_by_service": frozenset({"Route"}),
    "_routes_by_gateway": frozenset({"Route"}),
    "_traffic_policies": frozenset({"TrafficPolicy"}),
    "address_seed": frozenset({ADDRESS_SEED_KEY.kind}),
    "local_addresses": frozenset({"Service", "ExternalService", ADDRESS_SEED_KEY.kind}),
}


#: ``changed_since`` knows the keys of an apply of at most this many resources (a larger
#: one, e.g. a whole mesh at once, is compared view by view: its keys are not kept)
_KEYS_KEPT = 1024


@dataclass(frozen=True)
class ModelSnapshot:
    revision: int = 0
    resources: Mapping[ResourceKey, Resource] = field(default_factory=dict)
    #: create revision of each resource: older resources win address allocation ties
    created: Mapping[ResourceKey, int] = field(default_factory=dict)
    #: per kind, a token replaced whenever a resource of that kind changes: a cheap,
    #: identity-compared key for work that depends on every resource of a kind
    generations: Mapping[str, object] = field(default_factory=dict)

    def generation(self, kind: str) -> object:
        token = self.generations.get(kind)
        if token is None:
            # no resource of this kind was ever put here: every such snapshot is alike
            has_kind = kind in self._by_kind
            token = self._base_generation if has_kind else _NO_RESOURCES
        return token

    @cached_property
    def _base_generation(self) -> object:
        return object()

    @classmethod
    def from_stored(cls, stored: Iterable[StoredRecord], revision: int) -> ModelSnapshot:
        resources: dict[ResourceKey, Resource] = {}
        created: dict[ResourceKey, int] = {}
        for s in stored:
            resources[s.key] = parse_manifest(s.manifest)
            created[s.key] = s.create_revision
        return cls(revision, resources, created)

    def with_changes(
        self,
        puts: Iterable[Resource] = (),
        deletes: Iterable[ResourceKey] = (),
        *,
        revision: int | None = None,
    ) -> ModelSnapshot:
        """The snapshot after an apply (new resources count as newest). Unchanged resources
        stay the same objects, which is what lets translation reuse its earlier work."""
        puts, deletes = list(puts), list(deletes)
        resources = dict(self.resources)
        created = dict(self.created)
        touched: set[str] = set()
        for key in deletes:
            resources.pop(key, None)
            created.pop(key, None)
            touched.add(key.kind)
        # (the newest create revision and the kinds present are known without a walk over
        # every resource: ~5 ms of each apply at 10k services)
        newest = max(self._newest_created, self.revision, revision or 0) + 1
        for r in puts:
            resources[r.key] = r
            created.setdefault(r.key, newest)
            touched.add(r.kind)
        kinds = self._kinds if touched <= self._kinds else self._kinds | touched
        generations = {k: object() if k in touched else self.generation(k) for k in kinds}
        out = replace(
            self,
            revision=self.revision if revision is None else revision,
            resources=resources,
            created=created,
            generations=generations,
        )
        out.__dict__.update(self._carried(puts, deletes, touched))
        if "Workload" in touched:
            out.__dict__.update(self._workloads_carried(puts, deletes))
        if "Route" in touched:
            out.__dict__.update(self._routes_carried(puts, deletes))
        if len(puts) + len(deletes) <= _KEYS_KEPT:
            out.__dict__["_made_from"] = (
                weakref.ref(self),
                frozenset(r.key for r in puts) | {*deletes},
            )
        if not deletes:  # (a delete may take the newest resource or a kind's last one)
            added = any(created[r.key] == newest for r in puts)
            out.__dict__["_newest_created"] = newest if added else self._newest_created
            out.__dict__["_kinds"] = kinds
        return out

    def changed_since(self, old: ModelSnapshot) -> frozenset[ResourceKey] | None:
        """The keys put or deleted to make this snapshot from ``old``, when it was made
        from ``old`` by one ``with_changes`` (``at_revision`` keeps that); None when that is
        not known (compare the views). A lone apply's publish then finds what changed in
        what it put, not in a walk over every workload (~5 ms at 10k services)."""
        made_from = self.__dict__.get("_made_from")
        if made_from is None or made_from[0]() is not old:
            return None
        keys: frozenset[ResourceKey] = made_from[1]
        return keys

    @cached_property
    def _newest_created(self) -> int:
        """The highest create revision of any resource (0 when there is none)."""
        return max(self.created.values(), default=0)

    @cached_property
    def _kinds(self) -> frozenset[str]:
        """The kinds of the resources here."""
        return frozenset(k.kind for k in self.resources)

    def _carried(
        self, puts: list[Resource], deletes: list[ResourceKey], touched: set[str]
    ) -> dict[str, object]:
        """The views computed here that the snapshot after ``puts`` and ``deletes`` may
        share: those reading no touched kind, and the per-kind index when the changes only
        replace resources (its touched kinds copied with the new objects in place). At 10k
        services a workload's weight change otherwise recomputed every view from 50k
        resources (~230 ms of the next round, ``local_addresses`` alone 130 ms). Nothing
        here walks every resource: a burst of applies pays only for what it changed."""
        mine = self.__dict__
        out: dict[str, object] = {
            name: mine[name]
            for name, reads in _READS.items()
            if name in mine and not reads & touched
        }
        by_kind = mine.get("_by_kind")
        if by_kind is None or deletes:
            return out
        redone: dict[str, dict[Ref, Resource]] = defaultdict(dict, by_kind)
        for kind in touched:
            view = dict(by_kind.get(kind, {}))
            for r in puts:
                if r.kind == kind:
                    if r.ref not in view:
                        return out  # a new resource: its place in name order is computed later
                    view[r.ref] = r
            redone[kind] = view
        out["_by_kind"] = redone
        return out

    def _workloads_carried(
        self, puts: list[Resource], deletes: list[ResourceKey]
    ) -> dict[str, object]:
        """Workloads by service after ``puts`` that replace workloads of the same service
        (a weight, health or label change: a rolling restart), from this snapshot's;
        nothing (computed when asked) after any other change of workloads."""
        before = self.__dict__.get("_workloads_by_service")
        if before is None or any(k.kind == "Workload" for k in deletes):
            return {}
        old = self.workloads
        by_service: dict[Ref, list[Workload]] = defaultdict(list, before)
        last = {r.key: r for r in puts if isinstance(r, Workload)}  # (the last put wins)
        for r in last.values():
            was = old.get(r.ref)
            if was is None or was.spec.service != r.spec.service:
                return {}
            ref = (r.metadata.namespace, r.spec.service)
            by_service[ref] = [r if w is was else w for w in by_service[ref]]
        return {"_workloads_by_service": by_service}

    def _routes_carried(
        self, puts: list[Resource], deletes: list[ResourceKey]
    ) -> dict[str, object]:
        """Routes by gateway and by service after ``puts`` that replace Routes bound to
        the same gateways and service (a rule's change), from this snapshot's; nothing
        (computed when asked) after any other change of Routes. At 10k services each
        Route change walked all 10,000 Routes again (~20 ms)."""
        mine = self.__dict__
        carried: dict[str, defaultdict[Ref, list[Route]]] = {
            name: defaultdict(list, mine[name])
            for name in ("_routes_by_gateway", "_routes_by_service")
            if name in mine
        }
        if not carried or any(k.kind == "Route" for k in deletes):
            return {}
        old = self.routes
        last = {r.key: r for r in puts if isinstance(r, Route)}  # (the last put wins)
        for r in last.values():
            was = old.get(r.ref)
            if was is None or (was.spec.gateways, was.spec.service) != (
                r.spec.gateways,
                r.spec.service,
            ):
                return {}
            ns = r.metadata.namespace
            lists = [("_routes_by_gateway", (ns, g)) for g in dict.fromkeys(r.spec.gateways)]
            if r.spec.service is not None:
                lists.append(("_routes_by_service", (ns, r.spec.service)))
            for name, ref in lists:
                if name in carried:
                    view = carried[name]
                    view[ref] = [r if x is was else x for x in view[ref]]
        return dict(carried)

    def at_revision(self, revision: int) -> ModelSnapshot:
        """The same content at another revision, sharing the indexes already computed."""
        out = replace(self, revision=revision)
        names = {f.name for f in fields(self)}
        out.__dict__.update({k: v for k, v in self.__dict__.items() if k not in names})
        return out

    # -- typed views -----------------------------------------------------------------------

    @cached_property
    def _by_kind(self) -> dict[str, dict[Ref, Resource]]:
        out: dict[str, dict[Ref, Resource]] = defaultdict(dict)
        for k in sorted(self.resources):
            out[k.kind][(k.namespace, k.name)] = self.resources[k]
        return out

    def _of(self, kind: type[Resource]) -> dict[Ref, Resource]:
        return self._by_kind.get(kind.__name__, {})

    @cached_property
    def services(self) -> dict[Ref, Service]:
        return self._of(Service)  # type: ignore[return-value]

    @cached_property
    def workloads(self) -> dict[Ref, Workload]:
        return self._of(Workload)  # type: ignore[return-value]

    @cached_property
    def gateways(self) -> dict[Ref, Gateway]:
        return self._of(Gateway)  # type: ignore[return-value]

    @cached_property
    def routes(self) -> dict[Ref, Route]:
        return self._of(Route)  # type: ignore[return-value]

    @cached_property
    def external_services(self) -> dict[Ref, ExternalService]:
        return self._of(ExternalService)  # type: ignore[return-value]

    @cached_property
    def mesh(self) -> Mesh:
        meshes = self._of(Mesh)
        return next(iter(meshes.values()), _DEFAULT_MESH)  # type: ignore[return-value]

    @cached_property
    def _workloads_by_service(self) -> dict[Ref, list[Workload]]:
        out: dict[Ref, list[Workload]] = defaultdict(list)
        for (ns, _), w in self.workloads.items():
            out[(ns, w.spec.service)].append(w)
        return out

    def workloads_of(self, service: Ref) -> list[Workload]:
        return self._workloads_by_service.get(service, [])

    @cached_property
    def _routes_by_service(self) -> dict[Ref, list[Route]]:
        out: dict[Ref, list[Route]] = defaultdict(list)
        for (ns, _), r in self.routes.items():
            if r.spec.service is not None:
                out[(ns, r.spec.service)].append(r)
        return out

    def routes_for_service(self, service: Ref) -> list[Route]:
        """East-west routes for a service, in name order (their rules are concatenated)."""
        return self._routes_by_service.get(service, [])

    @cached_property
    def _routes_by_gateway(self) -> dict[Ref, list[Route]]:
        out: dict[Ref, list[Route]] = defaultdict(list)
        for (ns, _), r in self.routes.items():
            for name in dict.fromkeys(r.spec.gateways):
                out[(ns, name)].append(r)
        return out

    def routes_for_gateway(self, gateway: Ref) -> list[Route]:
        """Ingress routes of a gateway, in name order."""
        return self._routes_by_gateway.get(gateway, [])

    @cached_property
    def _traffic_policies(self) -> dict[tuple[Ref, tuple[tuple[str, str], ...]], TrafficPolicy]:
        # Name order: of two policies for one (service, subset) (refused on apply) the
        # first by name would win.
        out: dict[tuple[Ref, tuple[tuple[str, str], ...]], TrafficPolicy] = {}
        for (ns, _), p in self._of(TrafficPolicy).items():
            assert isinstance(p, TrafficPolicy)
            out.setdefault(((ns, p.spec.service), p.subset_key), p)
        return out

    def traffic_policy(
        self, service: Ref, subset: tuple[tuple[str, str], ...] = ()
    ) -> TrafficPolicy | None:
        """The TrafficPolicy for ``service``'s cluster of ``subset``: the subset's own if it
        has one (it replaces the service's as a whole), else the service's."""
        policies = self._traffic_policies
        return policies.get((service, subset)) or policies.get((service, ()))

    def traffic_policies_of(self, service: Ref) -> list[TrafficPolicy]:
        """Every TrafficPolicy of ``service``, the service-wide one first, then by subset."""
        found = [p for (ref, _), p in self._traffic_policies.items() if ref == service]
        return sorted(found, key=lambda p: (len(p.subset_key), p.subset_key))

    # -- stable local addresses ------------------------------------------------------------

    @cached_property
    def address_seed(self) -> str:
        """The mesh's address seed (``AddressSeed``, written at its store's first start);
        "" without one: a store created before seeds hashes ``namespace/name`` alone."""
        record = self.resources.get(ADDRESS_SEED_KEY)
        return record.spec.seed if isinstance(record, AddressSeed) else ""

    @cached_property
    def local_addresses(self) -> dict[Ref, str]:
        """Each service's (and ExternalService's) stable loopback address (explicit, or
        hashed into 127.128.0.0/9 with the mesh's ``address_seed``: the same in every
        snapshot of one store, different between two meshes on one machine).

        Hash collisions go to the service created first; the later one probes onwards, so
        adding a service never moves an existing one.
        """
        taken: dict[str, Ref] = {}
        out: dict[Ref, str] = {}
        kinds: dict[Ref, Service | ExternalService] = {**self.external_services, **self.services}
        for ref, svc in kinds.items():
            if svc.spec.localAddress:
                out[ref] = svc.spec.localAddress
                taken.setdefault(svc.spec.localAddress, ref)
        order = sorted(
            (ref for ref in kinds if ref not in out),
            key=lambda ref: (self.created.get(ResourceKey(kinds[ref].kind, *ref), 0), ref),
        )
        size = VIP_NET.num_addresses
        seed = self.address_seed
        for ref in order:
            slot = _slot(seed, ref)
            for probe in range(size):
                addr = VIP_NET.network_address + (slot + probe) % size
                if addr.packed[-1] not in (0, 255) and str(addr) not in taken:
                    taken[str(addr)] = ref
                    out[ref] = str(addr)
                    break
        return out

    def service_port(self, service: Ref, port: str | None) -> ServicePort | None:
        svc = self.services.get(service)
        return svc.port(port) if svc else None


def _slot(seed: str, ref: Ref) -> int:
    """Where ``ref``'s probe starts: the first 4 bytes of the SHA-256 of ``namespace/name``
    (a seeded mesh: ``seed/namespace/name``; names hold no ``/``, so no two inputs alike)."""
    text = f"{ref[0]}/{ref[1]}" if not seed else f"{seed}/{ref[0]}/{ref[1]}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4])
