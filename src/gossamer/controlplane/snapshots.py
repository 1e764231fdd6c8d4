"""From a translated proxy to the xDS snapshot it is served as (the seam between
``translate`` and ``xds``, which know nothing of each other)."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import message

from gossamer.translate.proxy import ProxyResources
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Encoded, Snapshot


def by_type(resources: ProxyResources) -> dict[ResourceType, Mapping[str, message.Message]]:
    """``resources`` as the per-type mappings an xDS snapshot is built from."""
    return {
        ResourceType.CLUSTER: resources.clusters,
        ResourceType.ENDPOINT: resources.endpoints,
        ResourceType.LISTENER: resources.listeners,
        ResourceType.ROUTE: resources.routes,
        ResourceType.EXTENSION_CONFIG: resources.extension_configs,
    }


def proxy_snapshot(
    resources: ProxyResources,
    serializer: Serializer,
    created: float = 0.0,
    previous: Snapshot | None = None,
) -> Snapshot:
    """The snapshot serving ``resources`` to one proxy (diffed against ``previous``, the
    one it replaces, so each stream reads only what changed)."""
    encoded = {n: Encoded(*pair) for n, pair in resources.route_encodings.items()}
    sets = resources.shared_sets
    bases = (
        None
        if sets is None
        else {ResourceType.CLUSTER: sets.clusters, ResourceType.ENDPOINT: sets.endpoints}
    )
    return Snapshot.build(
        by_type(resources), serializer, created, previous, {ResourceType.ROUTE: encoded}, bases
    )
