"""Locality: callers prefer instances in their own zone and fail over to the others by
Envoy priority.

A caller's zone is its Workload's ``zone`` (a sidecar) or its Gateway's ``spec.zone`` (a
gateway); a caller without one has no preference. Each endpoint set a caller gets groups its
endpoints by zone (one ``LocalityLbEndpoints`` per zone): the caller's zone at priority 0,
every other zone (and workloads without a zone) at priority 1. So the endpoint set of one
cluster depends on the caller's zone, and callers in the same zone share one.

How much traffic leaves a zone is Envoy's priority arithmetic, kept as Envoy defines it:
the zone's health is its healthy share of weight (``weighted_priority_health``, so a weight-4
instance counts four times), times the overprovisioning factor 1.4. A zone keeps all of its
callers' traffic while at least 1/1.4 (about 71 %) of its weight is healthy; below that the
rest spills to the other zones in proportion (half healthy: 70 % stays, 30 % leaves), and a
zone with nothing healthy sends everything to the others. Draining instances count as not
healthy (capacity that is leaving). There is no panic mode (``clusters.outbound_cluster``),
so the spill never lands on unhealthy instances. Retries leave a failing zone at once
(``envoy.retry_priorities.previous_priorities`` in ``routes.retry_policy``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.core.v3 import base_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.snapshot import ModelSnapshot
from gossamer.types import ProxyIdentity

#: the priority of the caller's own zone, and of every other zone
LOCAL_PRIORITY = 0
REMOTE_PRIORITY = 1
#: Envoy's default, stated so the config says what governs the spill (percent)
OVERPROVISIONING_FACTOR = 140


def caller_zone(snap: ModelSnapshot, proxy: ProxyIdentity) -> str | None:
    """The zone ``proxy`` prefers: its Workload's or Gateway's; None when it has none (or
    its resource is gone)."""
    ref = (proxy.namespace, proxy.name)
    if proxy.kind == "sidecar":
        w = snap.workloads.get(ref)
        return w.zone if w is not None else None
    gw = snap.gateways.get(ref)
    return gw.spec.zone if gw is not None else None


def preferred(zones: Iterable[str], caller: str | None) -> str | None:
    """The zone to put at priority 0 for a caller in ``caller``, given the endpoints' zones
    (``""``: no zone); None when a preference would change nothing (the caller has no zone,
    no endpoint is in it, or every endpoint is)."""
    if caller is None:
        return None
    distinct = set(zones)
    return caller if caller in distinct and len(distinct) > 1 else None


def localities(
    by_zone: Mapping[str, list[ep_pb2.LbEndpoint]], caller: str | None
) -> list[ep_pb2.LocalityLbEndpoints]:
    """One ``LocalityLbEndpoints`` per zone, sorted by zone: the caller's at priority 0, the
    others at 1; all at 0 when the caller has no preference here."""
    local = preferred(by_zone, caller)
    return [
        ep_pb2.LocalityLbEndpoints(
            locality=base_pb2.Locality(zone=zone),
            lb_endpoints=eps,
            priority=REMOTE_PRIORITY if local is not None and zone != local else LOCAL_PRIORITY,
        )
        for zone, eps in sorted(by_zone.items())
    ]


def failover_policy(
    assignment: endpoint_pb2.ClusterLoadAssignment,
) -> None:
    """Set how a priority's health is computed on ``assignment`` when it has more than one
    priority (one priority needs none: with no panic mode nothing spills anywhere)."""
    if any(loc.priority != LOCAL_PRIORITY for loc in assignment.endpoints):
        assignment.policy.CopyFrom(
            endpoint_pb2.ClusterLoadAssignment.Policy(
                overprovisioning_factor=wrappers_pb2.UInt32Value(value=OVERPROVISIONING_FACTOR),
                weighted_priority_health=True,
            )
        )
