"""Global rate limits: Envoy's ``ratelimit`` filter asking ``gossamer ratelimit serve``.

Like the local rate limit and fault filters, the ``envoy.filters.http.ratelimit`` filter is
in every HCM from the start (``http_filter``), so giving a rule a global limit changes only
its routes (RDS) and never a listener. A globally limited rule's routes emit one
descriptor at stage 0 (the local filter uses stage 1): ``gossamer-rule = <ns>/<route>/
<rule name>`` then, with a ``key``, one entry carrying the key's value (a header, the
caller's service, the client address, the path or the method). A route that emits none is
never sent to the service.

The filter talks to the cluster ``gossamer_ratelimit`` (``cluster``: HTTP/2 to the
service's address, which the control plane knows: ``--ratelimit``), given only to proxies
that route a globally limited rule. When the service does not answer within
``Mesh.spec.rateLimit.timeout`` (down, unreachable, slow, or no cluster) the request
passes or is refused with 503 by ``Mesh.spec.rateLimit.failureMode``
(``failure_mode_deny``). Over the limit: 429 with ``x-ratelimit-limit``,
``x-ratelimit-remaining`` and ``x-ratelimit-reset`` built from the service's answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2, extension_pb2, grpc_service_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.ratelimit.v3 import rls_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.rate_limit_descriptors.expr.v3 import expr_pb2
from envoy.type.v3 import http_status_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.mesh import Mesh
from gossamer.model.rate_limits import MeshRateLimit, RateLimitKey
from gossamer.translate.common import any_of, duration, socket_address, upstream_protocol

GLOBAL_RATE_LIMIT_FILTER = "envoy.filters.http.ratelimit"
#: the cluster of the rate-limit service in every proxy that needs it
CLUSTER = "gossamer_ratelimit"
#: the protocol's domain of every Gossamer descriptor
DOMAIN = "gossamer"
#: the stage of the global filter's route actions (the local filter has stage 1)
GLOBAL_STAGE = 0
#: the descriptor entry naming the rule (as the local filter's: ``rate_limit.DESCRIPTOR_KEY``)
RULE_KEY = "gossamer-rule"
#: the descriptor entry of a key's value (``source_cluster`` and ``remote_address`` are
#: named by Envoy itself)
VALUE_KEY = "key"
#: the filter's stats: ``cluster.gossamer_ratelimit.ratelimit.ok|over_limit|error|...``
STAT_PREFIX = "global_rate_limit"
CONNECT_TIMEOUT = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class RateLimitService:
    """Where proxies reach the rate-limit service (``gossamer ratelimit serve --listen``)."""

    host: str
    port: int


def _service() -> rls_pb2.RateLimitServiceConfig:
    return rls_pb2.RateLimitServiceConfig(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=CLUSTER)
        ),
        transport_api_version=config_source_pb2.V3,
    )


def global_rate_limit(policy: MeshRateLimit) -> rate_limit_pb2.RateLimit:
    """The filter's config: ask the service for routes' stage-0 descriptors."""
    return rate_limit_pb2.RateLimit(
        domain=DOMAIN,
        stage=GLOBAL_STAGE,
        request_type="both",
        timeout=duration(policy.timeout),
        failure_mode_deny=policy.failureMode == "closed",
        rate_limit_service=_service(),
        enable_x_ratelimit_headers=rate_limit_pb2.RateLimit.DRAFT_VERSION_03,
        status_on_error=http_status_pb2.HttpStatus(code=http_status_pb2.ServiceUnavailable),
        stat_prefix=STAT_PREFIX,
    )


def http_filter(policy: MeshRateLimit) -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(
        name=GLOBAL_RATE_LIMIT_FILTER, typed_config=any_of(global_rate_limit(policy))
    )


def _key_action(key: RateLimitKey) -> rc_pb2.RateLimit.Action:
    Action = rc_pb2.RateLimit.Action
    which = key.which()
    if which == "header":
        assert key.header is not None
        name = key.header.lower()
        header = ":authority" if name == "host" else name
        return Action(
            request_headers=Action.RequestHeaders(
                header_name=header, descriptor_key=VALUE_KEY, skip_if_absent=True
            )
        )
    if which == "method":
        return Action(
            request_headers=Action.RequestHeaders(
                header_name=":method", descriptor_key=VALUE_KEY, skip_if_absent=True
            )
        )
    if which == "caller":
        return Action(source_cluster=Action.SourceCluster())
    if which == "clientAddress":
        return Action(remote_address=Action.RemoteAddress())
    expr = expr_pb2.Descriptor(
        descriptor_key=VALUE_KEY, text="request.url_path", skip_if_error=True
    )
    return Action(
        extension=extension_pb2.TypedExtensionConfig(
            name="envoy.rate_limit_descriptors.expr", typed_config=any_of(expr)
        )
    )


def route_rate_limit(rule: str, key: RateLimitKey | None) -> rc_pb2.RateLimit:
    """What a globally limited rule's routes carry: its descriptor for the service."""
    actions = [
        rc_pb2.RateLimit.Action(
            generic_key=rc_pb2.RateLimit.Action.GenericKey(
                descriptor_key=RULE_KEY, descriptor_value=rule
            )
        )
    ]
    if key is not None:
        actions.append(_key_action(key))
    return rc_pb2.RateLimit(stage=wrappers_pb2.UInt32Value(value=GLOBAL_STAGE), actions=actions)


def cluster(service: RateLimitService, mesh: Mesh) -> cluster_pb2.Cluster:
    """HTTP/2 (gRPC) to the rate-limit service's address."""
    return grpc_cluster(CLUSTER, service.host, service.port, mesh)


def grpc_cluster(name: str, host: str, port: int, mesh: Mesh) -> cluster_pb2.Cluster:
    """HTTP/2 (gRPC) to a request-path service at ``host:port`` (the rate-limit service,
    the NGAC decision point: ``ext_authz``)."""
    out = cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.STATIC,
        connect_timeout=duration(CONNECT_TIMEOUT),
        load_assignment=endpoint_pb2.ClusterLoadAssignment(
            cluster_name=name,
            endpoints=[
                endpoint_components_pb2.LocalityLbEndpoints(
                    lb_endpoints=[
                        endpoint_components_pb2.LbEndpoint(
                            endpoint=endpoint_components_pb2.Endpoint(
                                address=socket_address(host, port)
                            )
                        )
                    ]
                )
            ],
        ),
    )
    idle = mesh.spec.defaults.idleTimeout
    for k, v in upstream_protocol(http2=True, idle_timeout=idle).items():
        out.typed_extension_protocol_options[k].CopyFrom(v)
    return out
