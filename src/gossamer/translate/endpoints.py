"""Endpoints (ClusterLoadAssignment) of a service port or of one subset of it: its
workloads, grouped by zone, as one caller zone sees them (``translate.locality``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from envoy.config.core.v3 import health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.snapshot import Ref
from gossamer.model.workload import Workload
from gossamer.translate.common import socket_address
from gossamer.translate.locality import failover_policy, localities
from gossamer.translate.names import Subset
from gossamer.translate.tls import mark_endpoint

_HEALTH = {
    "healthy": health_check_pb2.HEALTHY,
    "unhealthy": health_check_pb2.UNHEALTHY,
    "draining": health_check_pb2.DRAINING,
}


def _port_of(w: Workload, port_name: str, single: bool) -> int | None:
    for p in w.spec.ports:
        if p.name == port_name or (p.name is None and single):
            return p.port
    return None


def in_subset(w: Workload, subset: Subset) -> bool:
    """Whether ``w`` carries every label of ``subset`` (everyone is in the empty subset)."""
    labels = w.metadata.labels
    return all(labels.get(k) == v for k, v in subset)


def load_assignment(
    name: str,
    port_name: str,
    workloads: Sequence[Workload],
    *,
    single_port: bool,
    subset: Subset = (),
    marked: frozenset[Ref] = frozenset(),
    caller_zone: str | None = None,
) -> endpoint_pb2.ClusterLoadAssignment:
    """Every workload of ``subset`` serving ``port_name``, with health, weight and zone, for
    a caller in ``caller_zone`` (its zone at priority 0, the others at 1).

    Unhealthy and draining workloads stay listed with that status (Envoy sends them no new
    requests) so a status flap does not churn the endpoint set. Labels are not sent: subsets
    are clusters of their own, so Envoy never selects endpoints by metadata. Workloads in
    ``marked`` carry the mTLS mark (``tls.TLS_MARK``): callers send them mTLS.
    """
    by_zone: dict[str, list[ep_pb2.LbEndpoint]] = defaultdict(list)
    for w in workloads:
        port = _port_of(w, port_name, single_port)
        if port is None or not in_subset(w, subset):
            continue
        lb = ep_pb2.LbEndpoint(
            endpoint=ep_pb2.Endpoint(
                address=socket_address(w.spec.address, port),
                hostname=w.metadata.name,
            ),
            health_status=_HEALTH[w.spec.health],
            load_balancing_weight=wrappers_pb2.UInt32Value(value=w.spec.weight),
        )
        if w.ref in marked:
            mark_endpoint(lb.metadata)
        by_zone[w.zone or ""].append(lb)
    out = endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name, endpoints=localities(by_zone, caller_zone)
    )
    failover_policy(out)
    return out
