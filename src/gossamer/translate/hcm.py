"""The HTTP connection manager every Gossamer listener uses, with safe defaults built in.

Defaults close the CVE-2019-9900/9901 class and Envoy's silent timeouts:
- paths are normalised (RFC 3986) and repeated slashes merged *before* routing and access
  rules see them, so ``/admin/../secret`` or ``//secret`` cannot bypass a rule;
- escaped slashes (``%2F``, ``%5C``) are unescaped and the client is redirected, so a rule on
  ``/a/b`` cannot be bypassed with ``/a%2Fb``;
- header names with underscores are rejected (or dropped, per Mesh setting) so they cannot
  alias a hyphenated header downstream;
- invalid HTTP messages (NUL bytes, bad characters) end the stream with a 400;
- the request-header, stream-idle and drain timeouts are explicit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from envoy.config.core.v3 import protocol_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import wrappers_pb2

from gossamer.model.mesh import Mesh
from gossamer.translate.common import ads_source, any_of, duration

HCM = hcm_pb2.HttpConnectionManager
HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"

_UNDERSCORES = {
    "reject": protocol_pb2.HttpProtocolOptions.REJECT_REQUEST,
    "drop": protocol_pb2.HttpProtocolOptions.DROP_HEADER,
    "allow": protocol_pb2.HttpProtocolOptions.ALLOW,
}

#: how long a client may take to send its request headers (slowloris guard)
REQUEST_HEADERS_TIMEOUT = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class Edge:
    """Settings of a listener that faces clients outside the mesh (a gateway)."""

    trusted_hops: int = 0


def http_connection_manager(
    stat_prefix: str,
    mesh: Mesh,
    *,
    rds: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
    edge: Edge | None = None,
) -> hcm_pb2.HttpConnectionManager:
    """An HCM routing by RDS (``rds`` names the route configuration) or an inline table."""
    defaults = mesh.spec.defaults
    hcm = HCM(
        stat_prefix=stat_prefix,
        codec_type=HCM.AUTO,
        http_filters=[
            hcm_pb2.HttpFilter(name=ROUTER_FILTER, typed_config=any_of(router_pb2.Router()))
        ],
        normalize_path=wrappers_pb2.BoolValue(value=True),
        merge_slashes=True,
        path_with_escaped_slashes_action=HCM.UNESCAPE_AND_REDIRECT,
        common_http_protocol_options=protocol_pb2.HttpProtocolOptions(
            idle_timeout=duration(defaults.idleTimeout),
            headers_with_underscores_action=_UNDERSCORES[mesh.spec.underscoreHeaders],
        ),
        http_protocol_options=protocol_pb2.Http1ProtocolOptions(),
        http2_protocol_options=protocol_pb2.Http2ProtocolOptions(
            max_concurrent_streams=wrappers_pb2.UInt32Value(value=1024),
        ),
        stream_error_on_invalid_http_message=wrappers_pb2.BoolValue(value=True),
        request_headers_timeout=duration(REQUEST_HEADERS_TIMEOUT),
        stream_idle_timeout=duration(defaults.streamIdleTimeout),
        drain_timeout=duration(defaults.drainTimeout),
        generate_request_id=wrappers_pb2.BoolValue(value=True),
        # Inside the mesh the caller's request id is kept so one id follows a request end
        # to end; at the edge it is replaced, as a client could otherwise choose it.
        preserve_external_request_id=edge is None,
    )
    if edge is not None:
        hcm.use_remote_address.value = True
        hcm.xff_num_trusted_hops = edge.trusted_hops
    if rds is not None:
        hcm.rds.config_source.CopyFrom(ads_source())
        hcm.rds.route_config_name = rds
    elif route_config is not None:
        hcm.route_config.CopyFrom(route_config)
    else:
        raise ValueError("http_connection_manager needs rds or route_config")
    return hcm
