"""Clusters: one per service port (and per subset of it) a proxy calls, and one per local app
port behind a sidecar."""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.type.v3 import percent_pb2

from gossamer.model.mesh import Mesh
from gossamer.model.service import ServicePort
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.translate.common import ads_source, duration, socket_address, upstream_protocol
from gossamer.translate.lb import apply_policy


def outbound_cluster(
    name: str,
    port: ServicePort,
    mesh: Mesh,
    *,
    sidecars: bool,
    policy: TrafficPolicy | None = None,
) -> cluster_pb2.Cluster:
    """An EDS cluster of a service port, or of one subset of it (its own endpoint set).

    Between sidecars the hop is multiplexed HTTP/2 whatever the apps speak (one connection
    instead of dozens); to a workload without a sidecar the cluster speaks the app protocol.
    A subset is a cluster of its own rather than Envoy's subset load balancer, so a route
    without a subset always reaches every instance and each subset can get its own policies.
    ``policy`` (its TrafficPolicy, if any) sets the load balancer, breakers, retry budget,
    outlier detection and health checks (``translate.lb``).
    """
    defaults = mesh.spec.defaults
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        connect_timeout=duration(defaults.connectTimeout),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
            eds_config=ads_source(), service_name=name
        ),
        # No panic mode: an unhealthy or draining instance gets no traffic even when it is
        # the only one (a 503 "no healthy upstream" beats requests to an app that is gone).
        common_lb_config=cluster_pb2.Cluster.CommonLbConfig(
            healthy_panic_threshold=percent_pb2.Percent(value=0)
        ),
    )
    if port.is_http:
        http2 = sidecars or port.protocol in ("http2", "grpc")
        for k, v in upstream_protocol(http2=http2, idle_timeout=defaults.idleTimeout).items():
            cluster.typed_extension_protocol_options[k].CopyFrom(v)
    apply_policy(cluster, policy, sidecars=sidecars)
    return cluster


def inbound_cluster(
    name: str, port: ServicePort, address: str, app_port: int, mesh: Mesh
) -> cluster_pb2.Cluster:
    """The local app behind a sidecar, in its own protocol."""
    defaults = mesh.spec.defaults
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(defaults.connectTimeout),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                ep_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        ep_pb2.LbEndpoint(
                            endpoint=ep_pb2.Endpoint(address=socket_address(address, app_port))
                        )
                    ]
                )
            ],
        ),
    )
    if port.is_http:
        http2 = port.protocol in ("http2", "grpc")
        for k, v in upstream_protocol(http2=http2, idle_timeout=defaults.idleTimeout).items():
            cluster.typed_extension_protocol_options[k].CopyFrom(v)
    return cluster
