"""The caller's side of an ExternalService reached through an egress gateway
(``spec.via``): its cluster leads to the Gateway's egress listener for it, not outside.

The hop is a mesh hop: HTTP/2 for ``http``/``https`` (one multiplexed connection, as between
sidecars), bytes for ``tcp``/``tls``; mutual TLS with the caller's identity when the caller
and the gateway both hold one (SDS) and the Mesh's mTLS mode is not ``off``, accepting only
the gateway's SPIFFE id. Retries, timeouts and rate limits stay at the caller (its route
table is the one it would have without ``via``); of its TrafficPolicy the caller keeps the
circuit breaker and retry budget, while the gateway, which sees the external endpoints,
applies all of it (``egress_gateway``).
"""

from __future__ import annotations

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2
from envoy.config.endpoint.v3 import endpoint_pb2

from gossamer.model.external_service import ExternalService
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.traffic_policy import LoadBalancer, TrafficPolicy
from gossamer.translate import names
from gossamer.translate.common import duration, socket_address, upstream_protocol
from gossamer.translate.lb import apply_policy
from gossamer.translate.tls import TlsState, upstream_socket
from gossamer.types import ProxyIdentity, spiffe_id


def gateway_mtls(snap: ModelSnapshot, gateway: Ref, tls: TlsState) -> bool:
    """Does the hop to (and the egress listener of) ``gateway`` take mTLS? When its Envoy
    gets secrets over SDS and the Mesh's mTLS mode is not ``off``."""
    capable = ProxyIdentity("gateway", *gateway).node_id in tls.capable
    return capable and snap.mesh.spec.mtls.mode != "off"


def _callers_part(policy: TrafficPolicy | None) -> TrafficPolicy | None:
    """What of ``policy`` acts at a caller whose only endpoint is the gateway: breakers and
    the retry budget (outlier detection, health checks and balancing need the real hosts)."""
    if policy is None:
        return None
    spec = policy.spec.model_copy(
        update={"outlierDetection": None, "healthCheck": None, "loadBalancer": LoadBalancer()}
    )
    return policy.model_copy(update={"spec": spec})


def sidecar_cluster(
    ref: Ref,
    ext: ExternalService,
    snap: ModelSnapshot,
    policy: TrafficPolicy | None,
    *,
    mtls: bool,
) -> cluster_pb2.Cluster:
    """A caller's cluster of ``ext`` (the name it has without ``via``: its route table and
    stats stay), one static endpoint: the egress gateway's address and ``via`` port."""
    gw_ref, port = ext.gateway, ext.gateway_port
    assert gw_ref is not None and port is not None, "only for an ExternalService with via"
    gw = snap.gateways[gw_ref]
    defaults = snap.mesh.spec.defaults
    name = names.outbound_cluster(ref, ext.spec.protocol)
    address = socket_address(gw.spec.address, port)
    endpoint = ep_pb2.LbEndpoint(endpoint=ep_pb2.Endpoint(address=address))
    cluster = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(defaults.connectTimeout),
        lb_policy=cluster_pb2.Cluster.ROUND_ROBIN,
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name, endpoints=[ep_pb2.LocalityLbEndpoints(lb_endpoints=[endpoint])]
        ),
    )
    if ext.is_http:
        for k, v in upstream_protocol(http2=True, idle_timeout=defaults.idleTimeout).items():
            cluster.typed_extension_protocol_options[k].CopyFrom(v)
    if mtls:
        peer = spiffe_id(snap.mesh.spec.trustDomain, *gw_ref)
        cluster.transport_socket.CopyFrom(upstream_socket(peer, http2=ext.is_http))
    apply_policy(cluster, _callers_part(policy), sidecars=False)
    return cluster
