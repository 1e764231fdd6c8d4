"""A sidecar's *local cluster*: the instances of its own service, so that a
``TrafficPolicy.rateLimit`` with ``scope: service`` is one figure across them all.

Envoy's ``local_ratelimit`` filter with ``local_cluster_rate_limit`` divides its buckets
among the members of the bootstrap's local cluster (``cluster_manager.local_cluster_name``):
with N members each request costs N tokens of a bucket of ``requests`` tokens (Envoy 1.40:
``RateLimitTokenBucket::consume(1/N)``), so each sidecar lets through ``requests / N`` per
``per`` (rounded down for a burst) and the service about ``requests`` in all. N is the
cluster's ``membership_total``, which counts every host listed, healthy or not: the endpoint
set holds only the **healthy** instances, so a failing or draining instance stops taking a
share and the others' grow (N = 0 counts as 1).

Envoy refuses a local cluster that is not in ``static_resources`` ("local cluster '...' must
be defined"), so each sidecar's bootstrap carries it (``bootstrap_cluster``): an EDS cluster
fed over ADS, whose endpoint set (``local_endpoints``) the control plane serves to every
sidecar of the service like any other endpoint set, and patches on an endpoint-only change
(``controlplane.incremental``). It is empty unless the service's policy asks for
``scope: service``, so other services' sidecars never get an update from it.

A local cluster also turns on Envoy's zone-aware routing (every cluster's balancer weighs
localities by the local cluster's spread); Gossamer's locality is priorities per caller zone
(``translate.locality``), so the bootstrap turns zone-aware routing off (``RUNTIME``).
"""

from __future__ import annotations

from functools import partial

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.model.workload import Workload
from gossamer.translate import names
from gossamer.translate.common import socket_address
from gossamer.translate.inbound_limit import inbound_policy
from gossamer.translate.memo import Memo

#: Envoy runtime: zone-aware routing off (percent of requests; Envoy's default is 100)
RUNTIME: dict[str, float] = {"upstream.zone_routing.enabled": 0}
#: how long a starting sidecar waits for its local cluster's endpoints before it goes on (s)
LOCAL_FETCH_TIMEOUT = 1
#: the name of the bootstrap's static runtime layer holding ``RUNTIME``
RUNTIME_LAYER = "gossamer-static"
#: the bootstrap's runtime layer that keeps the admin API's ``/runtime_modify`` working
ADMIN_LAYER = "admin"


def bootstrap_cluster(service: Ref) -> cluster_pb2.Cluster:
    """The local cluster of a sidecar of ``service``, for its bootstrap's static resources:
    its endpoints come over ADS (EDS) under the same name."""
    cluster = cluster_pb2.Cluster(name=names.local_cluster(service), type=cluster_pb2.Cluster.EDS)
    eds = cluster.eds_cluster_config.eds_config
    eds.ads.SetInParent()
    eds.resource_api_version = config_source_pb2.V3
    # Envoy initialises static EDS clusters before it asks for CDS: a control plane that
    # does not answer (it never configures a proxy it does not know) must not hold the
    # sidecar's start for Envoy's default 15 s on a cluster that only counts instances
    eds.initial_fetch_timeout.FromSeconds(LOCAL_FETCH_TIMEOUT)
    # (nothing connects to it: it only counts the service's instances)
    cluster.connect_timeout.FromSeconds(1)
    return cluster


def shared_policy(snap: ModelSnapshot, service: Ref) -> TrafficPolicy | None:
    """The service's policy when its ``rateLimit`` has ``scope: service`` (only a policy
    without ``subset`` may say so), else None."""
    policy = snap.traffic_policy(service)
    if policy is None or policy.spec.subset or policy.spec.rateLimit is None:
        return None
    return policy if policy.spec.rateLimit.scope == "service" else None


def members(snap: ModelSnapshot, service: Ref) -> list[Workload]:
    """The instances sharing the service's figure: healthy, and under the service's policy
    (an instance in a subset with a policy of its own has that policy's rate limit)."""
    policy = shared_policy(snap, service)
    if policy is None:
        return []
    return [
        w
        for w in snap.workloads_of(service)
        if w.spec.health == "healthy" and w.spec.ports and inbound_policy(snap, w) is policy
    ]


def _assignment(name: str, held: tuple[Workload, ...]) -> endpoint_pb2.ClusterLoadAssignment:
    locality = ep_pb2.LocalityLbEndpoints()
    for w in sorted(held, key=lambda w: w.ref):
        locality.lb_endpoints.add(
            endpoint=ep_pb2.Endpoint(
                # the sidecar's first inbound port: unique per instance, even on shared hosts
                address=socket_address(w.spec.address, w.spec.ports[0].port),
                hostname=w.metadata.name,
            ),
            health_status=health_check_pb2.HEALTHY,
        )
    out = endpoint_pb2.ClusterLoadAssignment(cluster_name=name)
    if held:
        out.endpoints.append(locality)
    return out


def local_endpoints(
    memo: Memo, snap: ModelSnapshot, service: Ref
) -> endpoint_pb2.ClusterLoadAssignment:
    """The endpoint set of the local cluster of ``service``'s sidecars (the same for all of
    them, so shared)."""
    name = names.local_cluster(service)
    held = tuple(members(snap, service))
    return memo.get("local-cluster", (name, held), partial(_assignment, name, held))
