"""The clusters and endpoint sets many proxies take whole (a gateway's: every service its
routes reach, 10,000 of each at 10k services), made, checked and versioned once for all of
them, and kept across changes (``SetsKept``): taken as they are while nothing they read
changed, patched for the services whose workloads changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.translate.names import ClusterRef

Pair = tuple[cluster_pb2.Cluster, endpoint_pb2.ClusterLoadAssignment]


@dataclass(frozen=True, slots=True)
class ClusterSets:
    """Clusters and their endpoint sets by name, made once for every proxy using the same
    clusters (``SharedPieces.cluster_sets``). Shared: copy them, never change them."""

    clusters: dict[str, cluster_pb2.Cluster]
    endpoints: dict[str, endpoint_pb2.ClusterLoadAssignment]
    #: the clusters whose endpoint set ``endpoints`` lacks (checked once, not per proxy:
    #: none, unless the translator has a bug)
    unresolved: frozenset[str]

    @classmethod
    def of(
        cls,
        clusters: dict[str, cluster_pb2.Cluster],
        endpoints: dict[str, endpoint_pb2.ClusterLoadAssignment],
    ) -> ClusterSets:
        found = frozenset(n for n, _ in unresolved(clusters.items(), endpoints))
        return cls(clusters, endpoints, found)

    def patched(self, pairs: Mapping[str, Pair]) -> ClusterSets:
        """These sets with ``pairs`` (cluster name -> its cluster and endpoint set; names
        these hold) put in: new sets if any differs, checked again only where it does."""
        changed = [
            n
            for n, (c, e) in pairs.items()
            if self.clusters.get(n) is not c or self.endpoints.get(n) is not e
        ]
        if not changed:
            return self
        clusters, endpoints = dict(self.clusters), dict(self.endpoints)
        for n in changed:
            clusters[n], endpoints[n] = pairs[n]
        found = unresolved(((n, clusters[n]) for n in changed), endpoints)
        return ClusterSets(
            clusters, endpoints, self.unresolved.difference(changed) | {n for n, _ in found}
        )


def unresolved(
    clusters: Iterable[tuple[str, cluster_pb2.Cluster]],
    endpoints: Mapping[str, endpoint_pb2.ClusterLoadAssignment],
) -> Iterator[tuple[str, str]]:
    """Each EDS cluster of ``clusters`` (name, message) whose endpoint set ``endpoints``
    lacks, with that set's name."""
    for name, cluster in clusters:
        if cluster.HasField("eds_cluster_config"):
            eds = cluster.eds_cluster_config.service_name or name
            if eds not in endpoints:
                yield name, eds


#: (whether the proxy takes mTLS, its zone): what one proxy's sets depend on beyond the model
SetsKey = tuple[bool, str | None]


@dataclass(frozen=True, slots=True)
class _Made:
    """Sets and what they were made from."""

    #: the generations of the kinds every cluster reads, and the TLS state (by identity)
    read: tuple[object, ...]
    tls: object
    used: tuple[ClusterRef, ...]
    #: the generations of Services and Workloads they were last found current under
    checked: tuple[object, ...]
    #: each service of ``used``: the service and the workloads list read for it
    read_from: dict[Ref, tuple[object, object]]
    #: each service's cluster refs in ``used``
    refs_of: dict[Ref, list[ClusterRef]]
    sets: ClusterSets

    def stale(self, snap: ModelSnapshot) -> list[Ref]:
        """The services whose Service or workloads list is not the one the sets read (an
        identity check each: unchanged resources stay the same objects)."""
        services, workloads_of = snap.services, snap.workloads_of
        return [
            ref
            for ref, (svc, wl) in self.read_from.items()
            if services.get(ref) is not svc or ((w := workloads_of(ref)) is not wl and (w or wl))
        ]


class SetsKept:
    """The sets each kind of proxy took last, kept across Service and Workload changes and
    prunes of the translator's caches: taken again as they are while nothing they read
    changed (no walk at all while no Service or Workload changed), and patched for the
    services whose Service or workloads changed. (Made anew instead, the first gateway
    after an endpoint change looked its 10,000 clusters up again, ~40 ms at 10k
    services, and the sets were checked again.)"""

    def __init__(self) -> None:
        self._made: dict[SetsKey, _Made] = {}
        self._used: set[SetsKey] = set()

    def get(
        self,
        key: SetsKey,
        read: tuple[object, ...],
        tls: object,
        used: tuple[ClusterRef, ...],
        snap: ModelSnapshot,
        pair_of: Callable[[ClusterRef], Pair],
    ) -> ClusterSets:
        """The sets of ``used`` (``pair_of`` makes a cluster ref's pair) under ``read`` and
        ``tls``: those kept, patched where stale, or made anew."""
        self._used.add(key)
        checked = (snap.generation("Service"), snap.generation("Workload"))
        last = self._made.get(key)
        if last is not None and last.read == read and last.tls is tls and last.used == used:
            if last.checked == checked:  # (the next gateway of a round: no walk)
                return last.sets
            stale = last.stale(snap)
            if not stale:
                self._made[key] = replace(last, checked=checked)
                return last.sets
            read_from = dict(last.read_from)
            pairs = {}
            for ref in stale:
                read_from[ref] = (snap.services[ref], snap.workloads_of(ref))
                for cr in last.refs_of[ref]:
                    pair = pair_of(cr)
                    pairs[pair[0].name] = pair
            sets = last.sets.patched(pairs)
            made = _Made(read, tls, used, checked, read_from, last.refs_of, sets)
        else:
            made = self._make(read, tls, used, checked, snap, pair_of)
        self._made[key] = made
        return made.sets

    @staticmethod
    def _make(
        read: tuple[object, ...],
        tls: object,
        used: tuple[ClusterRef, ...],
        checked: tuple[object, ...],
        snap: ModelSnapshot,
        pair_of: Callable[[ClusterRef], Pair],
    ) -> _Made:
        clusters: dict[str, cluster_pb2.Cluster] = {}
        endpoints: dict[str, endpoint_pb2.ClusterLoadAssignment] = {}
        read_from: dict[Ref, tuple[object, object]] = {}
        refs_of: dict[Ref, list[ClusterRef]] = {}
        for cr in used:
            cluster, cla = pair_of(cr)
            clusters[cluster.name] = cluster
            endpoints[cluster.name] = cla
            if cr[0] not in read_from:
                read_from[cr[0]] = (snap.services[cr[0]], snap.workloads_of(cr[0]))
                refs_of[cr[0]] = []
            refs_of[cr[0]].append(cr)
        sets = ClusterSets.of(clusters, endpoints)
        return _Made(read, tls, used, checked, read_from, refs_of, sets)

    def prune(self) -> None:
        """At a prune of the translator's caches: forget the sets of kinds of proxy not
        taken since the last one (none taken at all: keep them)."""
        if self._used:
            self._made = {k: m for k, m in self._made.items() if k in self._used}
        self._used = set()
