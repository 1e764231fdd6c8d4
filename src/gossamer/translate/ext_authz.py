"""End users decided by the NGAC decision point (``gossamer authz serve``) over Envoy's
``ext_authz`` filter (docs/ngac.md, "End users").

Every inbound HCM holds the filter from the start, after ``jwt_authn`` and ``disabled``:
Envoy builds it only for the routes that turn it on. A service **decides end users** when
it enforces (``authorization.mode: enforce``) and the Mesh trusts some issuer
(``authentication.jwt``); each route of its inbound table then names the ``jwt_authn``
requirement (a token, if present, must verify: else 401) and turns this filter on with the
service as a context extension (``service: <ns>/<svc>``). Even then the filter runs only for
a request whose token verified (``filter_enabled_metadata`` on the token's payload): the
caller's service identity alone is the compiled RBAC's to decide, and a request without
token never waits for the decision point.

The check carries the peer certificate's URI SAN (``source.principal``: the calling
service), the verified payload (``metadata_context`` of ``envoy.filters.http.jwt_authn``),
the method and the normalised path. The decision point allows only if the end user *and*
the calling service are both allowed. It fails closed: a decision point that is down,
slow (``CHECK_TIMEOUT``) or not configured is a 403 (``failure_mode_allow: false``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2, grpc_service_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.matcher.v3 import metadata_pb2, value_pb2
from google.protobuf import any_pb2

from gossamer.model.mesh import Mesh
from gossamer.model.service import Service
from gossamer.model.snapshot import ModelSnapshot
from gossamer.translate import jwt
from gossamer.translate.common import any_of, duration
from gossamer.translate.global_rate_limit import grpc_cluster
from gossamer.translate.memo import Memo

EXT_AUTHZ_FILTER = "envoy.filters.http.ext_authz"
#: the decision point's cluster in the proxies of services that decide end users
CLUSTER = "gossamer_authz"
#: the context extension naming the service a request is for (``<ns>/<svc>``)
SERVICE_KEY = "service"
#: how long Envoy waits for a decision before failing closed
CHECK_TIMEOUT = timedelta(milliseconds=500)
#: the filter's stats: ``http.<HCM stat prefix>.ext_authz.ok|denied|error|...``
STAT_PREFIX = "end_users"


@dataclass(frozen=True, slots=True)
class AuthzService:
    """Where proxies reach the decision point (``gossamer authz serve --listen``)."""

    host: str
    port: int


def ext_authz() -> ext_authz_pb2.ExtAuthz:
    """The filter's config: ask the decision point about requests with a verified token."""
    present = metadata_pb2.MetadataMatcher(
        filter=jwt.JWT_FILTER,
        path=[metadata_pb2.MetadataMatcher.PathSegment(key=jwt.PAYLOAD_KEY)],
        value=value_pb2.ValueMatcher(present_match=True),
    )
    return ext_authz_pb2.ExtAuthz(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=CLUSTER),
            timeout=duration(CHECK_TIMEOUT),
        ),
        transport_api_version=config_source_pb2.V3,
        failure_mode_allow=False,
        metadata_context_namespaces=[jwt.JWT_FILTER],
        filter_enabled_metadata=present,
        stat_prefix=STAT_PREFIX,
    )


def http_filter() -> hcm_pb2.HttpFilter:
    """The inbound HCM's filter, off until a route turns it on (``per_route``)."""
    config = any_of(ext_authz())
    return hcm_pb2.HttpFilter(name=EXT_AUTHZ_FILTER, typed_config=config, disabled=True)


def per_route(service: tuple[str, str]) -> ext_authz_pb2.ExtAuthzPerRoute:
    return ext_authz_pb2.ExtAuthzPerRoute(
        check_settings=ext_authz_pb2.CheckSettings(
            context_extensions={SERVICE_KEY: f"{service[0]}/{service[1]}"}
        )
    )


def cluster(service: AuthzService, mesh: Mesh) -> cluster_pb2.Cluster:
    """HTTP/2 (gRPC) to the decision point."""
    return grpc_cluster(CLUSTER, service.host, service.port, mesh)


def decides_end_users(snap: ModelSnapshot, service: Service) -> bool:
    """Does ``service``'s sidecar ask the decision point about requests with a token?"""
    mode = service.authorization_mode(snap.mesh.spec.authorization.mode)
    return mode == "enforce" and bool(snap.mesh.spec.authentication.jwt)


def deciding_end_users(
    table: route_pb2.RouteConfiguration, service: tuple[str, str]
) -> route_pb2.RouteConfiguration:
    """``table`` (a copy) with every route naming the token requirement and turning the
    decision point on for ``service``."""
    out = route_pb2.RouteConfiguration()
    out.CopyFrom(table)
    requirement = any_of(jwt.per_route())
    check = any_of(per_route(service))
    for vh in out.virtual_hosts:
        for route in vh.routes:
            _guard(route, requirement, check)
    return out


def _guard(route: rc_pb2.Route, requirement: any_pb2.Any, check: any_pb2.Any) -> None:
    route.typed_per_filter_config[jwt.JWT_FILTER].CopyFrom(requirement)
    route.typed_per_filter_config[EXT_AUTHZ_FILTER].CopyFrom(check)


def inbound_table(
    memo: Memo, snap: ModelSnapshot, service: Service, table: route_pb2.RouteConfiguration
) -> route_pb2.RouteConfiguration:
    """``service``'s inbound ``table`` deciding end users if it does (memoised on the table:
    the enforced table is itself memoised per access lists)."""
    if not decides_end_users(snap, service):
        return table
    return memo.get(
        "end-user-inbound", (table, service.ref), lambda: deciding_end_users(table, service.ref)
    )
