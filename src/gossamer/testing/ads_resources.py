"""What Envoy decodes and checks of single xDS resources (used by ``ads_protocol``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import message

from gossamer.xds.resources import ResourceType

C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE
X = ResourceType.EXTENSION_CONFIG

#: the typed message each resource type decodes to
MESSAGES: dict[ResourceType, type[Any]] = {
    C: cluster_pb2.Cluster,
    E: endpoint_pb2.ClusterLoadAssignment,
    L: listener_pb2.Listener,
    R: route_pb2.RouteConfiguration,
    X: extension_pb2.TypedExtensionConfig,
}
HCM_URL = (
    "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3."
    "HttpConnectionManager"
)


class _ResourceError(Exception):
    """A resource Envoy would refuse; its text goes into the NACK's ``error_detail``
    (internal to the fake ADS client: always caught there, never raised to its user)."""


@dataclass(frozen=True, slots=True)
class Held:
    """One accepted resource: its decoded message and version (SotW: the response's)."""

    message: Any
    version: str


def listener_error(name: str, held: Held, others: dict[str, Held]) -> str | None:
    """Why Envoy's listener manager would refuse this listener beside ``others``."""
    lst = held.message
    if not lst.HasField("address") and not lst.HasField("internal_listener"):
        return f"listener {name!r}: address is necessary"
    if lst.HasField("address"):
        for other, h in others.items():
            if other != name and h.message.address == lst.address:
                return f"listener {name!r} has the same address as listener {other!r}"
    try:
        route_names(name, lst)
    except _ResourceError as e:
        return str(e)
    return None


def eds_name(cluster: Any) -> str:
    return cluster.eds_cluster_config.service_name or cluster.name  # type: ignore[no-any-return]


def route_names(listener_name: str, listener: Any) -> set[str]:
    """The RDS route configs a listener's HTTP connection managers name (NACK if unusable)."""
    names: set[str] = set()
    chains: Iterable[Any] = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains = [*chains, listener.default_filter_chain]
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.type_url != HCM_URL:
                continue
            try:
                hcm = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
            except message.DecodeError as e:
                raise _ResourceError(
                    f"listener {listener_name!r}: cannot decode {f.name}: {e}"
                ) from None
            which = hcm.WhichOneof("route_specifier")
            if which is None:
                raise _ResourceError(f"listener {listener_name!r}: {f.name} has no route specifier")
            if which == "rds":
                if not hcm.rds.route_config_name or not hcm.rds.config_source.HasField("ads"):
                    raise _ResourceError(
                        f"listener {listener_name!r}: {f.name} names its routes without an "
                        "ADS config source and a route_config_name"
                    )
                names.add(hcm.rds.route_config_name)
    return names


def filter_config_names(listener: Any) -> set[str]:
    """The HTTP filter configs (ECDS) a listener's connection managers discover over ADS
    (call ``route_names`` first: it rejects what does not decode)."""
    names: set[str] = set()
    chains: Iterable[Any] = list(listener.filter_chains)
    if listener.HasField("default_filter_chain"):
        chains = [*chains, listener.default_filter_chain]
    for chain in chains:
        for f in chain.filters:
            if f.typed_config.type_url != HCM_URL:
                continue
            hcm = hcm_pb2.HttpConnectionManager.FromString(f.typed_config.value)
            names |= {
                hf.name
                for hf in hcm.http_filters
                if hf.HasField("config_discovery")
                and hf.config_discovery.config_source.HasField("ads")
            }
    return names


def route_clusters(config: Any) -> set[str]:
    out: set[str] = set()
    for vhost in config.virtual_hosts:
        for route in vhost.routes:
            action = route.route
            if action.cluster:
                out.add(action.cluster)
            out.update(w.name for w in action.weighted_clusters.clusters)
    return out
