"""The clusters and endpoint sets many proxies take whole (a gateway's: every service its
routes reach, 10,000 of each at 10k services), made, checked and versioned once for all of
them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2


@dataclass(frozen=True, slots=True)
class ClusterSets:
    """Clusters and their endpoint sets by name, made once for every proxy using the same
    clusters (``SharedPieces.cluster_sets``). Shared: copy them, never change them."""

    clusters: dict[str, cluster_pb2.Cluster]
    endpoints: dict[str, endpoint_pb2.ClusterLoadAssignment]
    #: the clusters whose endpoint set ``endpoints`` lacks (checked once, not per proxy:
    #: none, unless the translator has a bug)
    unresolved: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        found = unresolved(self.clusters.items(), self.endpoints)
        object.__setattr__(self, "unresolved", frozenset(n for n, _ in found))


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
