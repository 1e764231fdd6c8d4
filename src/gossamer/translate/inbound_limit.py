"""``TrafficPolicy.rateLimit``: a budget at each of the service's sidecars, inbound.

Like a Route rule's local limit (``translate.rate_limit``), the bucket lives in the inbound
HCM's ``local_ratelimit`` filter as a descriptor (its config an ECDS resource of its own,
so a budget change drains no listener), and the inbound routes only emit it, so a route
push never refills it. Each sidecar has its own bucket: N replicas take N times
``requests`` per ``per`` in all; with ``scope: service`` the filter divides it among the
service's healthy instances (``translate.local_cluster``), ``requests`` in all.
"""

from __future__ import annotations

from envoy.config.route.v3 import route_pb2

from gossamer.model.snapshot import ModelSnapshot
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.model.workload import Workload
from gossamer.translate.rate_limit import Bucket, route_rate_limit


def inbound_policy(snap: ModelSnapshot, w: Workload) -> TrafficPolicy | None:
    """The policy for ``w``'s inbound side: that of the most specific subset it is in (most
    labels, then by labels), else its service's."""
    labels = w.metadata.labels
    service = (w.metadata.namespace, w.spec.service)
    matching = [
        p
        for p in snap.traffic_policies_of(service)
        if all(labels.get(k) == v for k, v in p.subset_key)
    ]
    return max(matching, key=lambda p: len(p.subset_key), default=None)


def policy_rule(policy: TrafficPolicy) -> str:
    """The descriptor value of a policy's bucket (capitals and ``:`` never occur in a Route
    rule's, which are lowercase names joined by ``/``)."""
    ns, name = policy.ref
    return f"TrafficPolicy:{ns}/{name}"


def inbound_bucket(snap: ModelSnapshot, w: Workload) -> Bucket | None:
    policy = inbound_policy(snap, w)
    if policy is None or policy.spec.rateLimit is None:
        return None
    limit = policy.spec.rateLimit
    return Bucket(policy_rule(policy), limit.requests, limit.per, limit.scope == "service")


def limited(
    table: route_pb2.RouteConfiguration, bucket: Bucket | None
) -> route_pb2.RouteConfiguration:
    """``table`` (a sidecar's inbound routes) with every route emitting ``bucket``'s
    descriptor; ``table`` itself when there is no bucket (it may be shared: never changed)."""
    if bucket is None:
        return table
    out = route_pb2.RouteConfiguration()
    out.CopyFrom(table)
    for vh in out.virtual_hosts:
        for route in vh.routes:
            if route.HasField("route"):
                route.route.rate_limits.append(route_rate_limit(bucket.rule))
    return out
