"""A TrafficPolicy as Envoy sees it: the load balancer, circuit breakers, retry budget,
outlier detection and health checks of a caller's cluster, and the hash policy of the
routes to it.

Pure functions of the policy (None: the defaults every cluster gets, which include a retry
budget of 20 %, at least 3 concurrent retries, so retries cannot multiply an outage).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import base_pb2, health_check_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.traffic_policy import DEFAULT_RETRY_BUDGET, TrafficPolicy
from gossamer.translate.common import duration

_LB = {
    "roundRobin": cluster_pb2.Cluster.ROUND_ROBIN,
    "leastRequest": cluster_pb2.Cluster.LEAST_REQUEST,
    "random": cluster_pb2.Cluster.RANDOM,
    "ringHash": cluster_pb2.Cluster.RING_HASH,
    "maglev": cluster_pb2.Cluster.MAGLEV,
}


def _u32(value: int) -> wrappers_pb2.UInt32Value:
    return wrappers_pb2.UInt32Value(value=value)


def _thresholds(policy: TrafficPolicy | None) -> circuit_breaker_pb2.CircuitBreakers.Thresholds:
    """Default-priority thresholds: the policy's breaker, and its retry budget or the
    default one (none when the policy caps retries with ``maxRetries`` instead)."""
    out = circuit_breaker_pb2.CircuitBreakers.Thresholds(priority=base_pb2.DEFAULT)
    breaker = policy.spec.circuitBreaker if policy else None
    if breaker is not None:
        for field, value in (
            ("max_connections", breaker.maxConnections),
            ("max_pending_requests", breaker.maxPendingRequests),
            ("max_requests", breaker.maxRequests),
            ("max_retries", breaker.maxRetries),
        ):
            if value is not None:
                getattr(out, field).CopyFrom(_u32(value))
    if breaker is not None and breaker.maxRetries is not None:
        return out
    budget = policy.spec.retryBudget if policy else None
    percent, minimum = (budget.percent, budget.minConcurrency) if budget else DEFAULT_RETRY_BUDGET
    out.retry_budget.budget_percent.CopyFrom(percent_pb2.Percent(value=percent))
    out.retry_budget.min_retry_concurrency.CopyFrom(_u32(minimum))
    return out


def _outlier(policy: TrafficPolicy) -> outlier_detection_pb2.OutlierDetection | None:
    od = policy.spec.outlierDetection
    if od is None:
        return None
    return outlier_detection_pb2.OutlierDetection(
        consecutive_5xx=_u32(od.consecutive5xx),
        interval=duration(od.interval),
        base_ejection_time=duration(od.baseEjectionTime),
        max_ejection_percent=_u32(od.maxEjectionPercent),
        # only consecutive 5xx (and local connect failures, which count as 5xx) eject
        enforcing_consecutive_5xx=_u32(100),
        enforcing_success_rate=_u32(0),
        enforcing_consecutive_gateway_failure=_u32(0),
        enforcing_failure_percentage=_u32(0),
    )


def _health_check(policy: TrafficPolicy) -> health_check_pb2.HealthCheck | None:
    hc = policy.spec.healthCheck
    if hc is None:
        return None
    out = health_check_pb2.HealthCheck(
        timeout=duration(hc.timeout),
        interval=duration(hc.interval),
        # Envoy's default checks a cluster that has had no traffic yet once a minute, so
        # the first check's result would stand for 60 s: keep the configured interval.
        no_traffic_interval=duration(hc.interval),
        unhealthy_threshold=_u32(hc.unhealthyThreshold),
        healthy_threshold=_u32(hc.healthyThreshold),
    )
    if hc.http is not None:
        out.http_health_check.path = hc.http.path
    else:
        out.tcp_health_check.SetInParent()  # connecting is enough
    return out


def apply_policy(
    cluster: cluster_pb2.Cluster, policy: TrafficPolicy | None, *, sidecars: bool
) -> None:
    """Set ``policy`` (or the defaults) on a caller's outbound ``cluster``.

    Active health checks run only towards workloads without sidecars: a sidecar's agent
    checks its app and EDS carries the result.
    """
    cluster.circuit_breakers.thresholds.append(_thresholds(policy))
    if policy is None:
        return
    lb = policy.spec.loadBalancer
    cluster.lb_policy = _LB[lb.algorithm]
    if lb.algorithm == "ringHash":
        cluster.ring_hash_lb_config.SetInParent()
    elif lb.algorithm == "maglev":
        cluster.maglev_lb_config.SetInParent()
    if (od := _outlier(policy)) is not None:
        cluster.outlier_detection.CopyFrom(od)
    if not sidecars and (hc := _health_check(policy)) is not None:
        cluster.health_checks.append(hc)


def hash_policies(policy: TrafficPolicy | None) -> list[rc_pb2.RouteAction.HashPolicy]:
    """The route hash policy a ``ringHash``/``maglev`` policy needs (else none)."""
    if policy is None or policy.spec.loadBalancer.hash is None:
        return []
    h = policy.spec.loadBalancer.hash
    out = rc_pb2.RouteAction.HashPolicy()
    if h.header is not None:
        out.header.header_name = h.header.lower()
    elif h.cookie is not None:
        out.cookie.name = h.cookie.name
        if h.cookie.ttl is not None:
            out.cookie.ttl.CopyFrom(duration(h.cookie.ttl))
    else:
        out.connection_properties.source_ip = True
    return [out]


def add_hash_policies(
    routes: Iterable[rc_pb2.Route], policy_of: Callable[[str], TrafficPolicy | None]
) -> None:
    """Give each route that sends to a hashing cluster that cluster's hash policy.

    ``policy_of`` maps a cluster name to its policy. A route splitting between clusters
    gets the first hashing destination's policy: Envoy hashes once per request.
    """
    for route in routes:
        if not route.HasField("route") or route.route.hash_policy:
            continue
        action = route.route
        names = [action.cluster] if action.cluster else []
        names += [c.name for c in action.weighted_clusters.clusters]
        for name in names:
            if found := hash_policies(policy_of(name)):
                action.hash_policy.extend(found)
                break
