"""The one registry of xDS resource types: type URLs, push order, names. No type-URL string
literal appears anywhere else."""

from __future__ import annotations

from enum import Enum


class ResourceType(Enum):
    # value: (short name, type URL)
    CLUSTER = ("clusters", "type.googleapis.com/envoy.config.cluster.v3.Cluster")
    ENDPOINT = (
        "endpoints",
        "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    )
    LISTENER = ("listeners", "type.googleapis.com/envoy.config.listener.v3.Listener")
    ROUTE = ("routes", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration")
    #: ECDS: an HTTP filter's config, asked for by name by the listeners whose filter has
    #: ``config_discovery`` (the local rate limit's buckets: ``translate.rate_limit``)
    EXTENSION_CONFIG = (
        "extension_configs",
        "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
    )

    # Hashed as the object it is (members are singletons, compared by identity): Enum's own
    # __hash__ is Python code, and the protocol state keys its tables by type on every
    # request and snapshot of every stream.
    __hash__ = object.__hash__

    @property
    def short(self) -> str:
        return self.value[0]

    @property
    def url(self) -> str:
        return self.value[1]

    @property
    def full_state(self) -> bool:
        """In state-of-the-world, a response of this type must carry every resource."""
        return self in _FULL_STATE

    @classmethod
    def from_url(cls, url: str) -> ResourceType | None:
        return _BY_URL.get(url)


_BY_URL = {t.url: t for t in ResourceType}
_FULL_STATE = frozenset((ResourceType.CLUSTER, ResourceType.LISTENER))

#: Additions and updates go out in this order; removals in the reverse. Filter configs
#: (ECDS) come after the listeners naming them, which is when Envoy asks for them (a
#: listener warms until it has them: a name it newly needs is sent at once, as a route
#: is), and before routes, so a route emitting a new bucket's descriptor finds the bucket.
PUSH_ORDER: tuple[ResourceType, ...] = (
    ResourceType.CLUSTER,
    ResourceType.ENDPOINT,
    ResourceType.LISTENER,
    ResourceType.EXTENSION_CONFIG,
    ResourceType.ROUTE,
)
