"""The HTTP connection manager every Gossamer listener uses, with safe defaults built in.

Defaults close the CVE-2019-9900/9901 class and Envoy's silent timeouts:
- paths are normalised (RFC 3986) and repeated slashes merged *before* routing and access
  rules see them, so ``/admin/../secret`` or ``//secret`` cannot bypass a rule;
- escaped slashes (``%2F``, ``%5C``) are unescaped and the client is redirected, so a rule on
  ``/a/b`` cannot be bypassed with ``/a%2Fb``;
- header names with underscores are rejected (or dropped, per Mesh setting) so they cannot
  alias a hyphenated header downstream;
- invalid HTTP messages (NUL bytes, bad characters) end the stream with a 400;
- the request-header, stream-idle and drain timeouts are explicit;
- WebSocket is the one upgrade let through, over HTTP/1.1 (``Upgrade``) and HTTP/2 (extended
  CONNECT, which is how it crosses the HTTP/2 hop between sidecars); any other is a 403.

A listener that faces clients outside the mesh (a gateway, ``edge``) also:
- takes the client address from the connection (``use_remote_address``), trusting only
  ``trusted_hops`` X-Forwarded-For entries, and treats no client address as internal;
- removes every ``x-envoy-*`` header a client sent before Envoy looks at the request, so
  none reaches a service or changes routing, retries or timeouts (CVE-2023-27487);
- removes any ``x-forwarded-client-cert`` a client sent (``SANITIZE``): only a sidecar that
  verified the caller's certificate may say who called;
- routes ``Host`` in its canonical form: without a trailing dot or a port (Envoy itself
  ignores case and trailing whitespace), so ``admin.example.`` or ``admin.example:80``
  cannot land on another virtual host than ``admin.example`` (CVE-2019-18802 class);
- refuses with 400 ``Host`` sent twice and any non-list header sent twice
  (``edge_guard``: CVE-2021-32777 / CVE-2020-25017 class);
- replaces the client's request id with its own;
- lets no ``x-envoy-*`` response header out, whichever Envoy added it (the callee sidecar's
  router adds ``x-envoy-upstream-service-time``): no internal timings leak out. Between
  sidecars they stay (a caller's Envoy reads ``x-envoy-overloaded`` not to retry);
- bounds what one client may make it buffer (per-connection buffer, HTTP/2 streams and
  windows);
- writes one JSON access-log line per request to stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.common.mutation_rules.v3 import mutation_rules_pb2
from envoy.config.core.v3 import (
    base_pb2,
    extension_pb2,
    protocol_pb2,
    substitution_format_string_pb2,
)
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.header_mutation.v3 import (
    header_mutation_pb2 as http_header_mutation_pb2,
)
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.http.early_header_mutation.header_mutation.v3 import (
    header_mutation_pb2,
)
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import struct_pb2, wrappers_pb2

from gossamer.model.mesh import Mesh
from gossamer.translate.common import ads_source, any_of, duration
from gossamer.translate.edge_guard import edge_guard
from gossamer.translate.filters import traffic_filters

HCM = hcm_pb2.HttpConnectionManager
HCM_FILTER = "envoy.filters.network.http_connection_manager"
ROUTER_FILTER = "envoy.filters.http.router"
STDOUT_ACCESS_LOG = "envoy.access_loggers.stdout"
EARLY_HEADER_MUTATION = "envoy.http.early_header_mutation.header_mutation"
HEADER_MUTATION_FILTER = "envoy.filters.http.header_mutation"
#: the one upgrade every HCM lets through
WEBSOCKET = "websocket"
#: headers Envoy reads as instructions (retries, timeouts, tracing, ...): never from outside
ENVOY_HEADER_PREFIX = "x-envoy-"

_UNDERSCORES = {
    "reject": protocol_pb2.HttpProtocolOptions.REJECT_REQUEST,
    "drop": protocol_pb2.HttpProtocolOptions.DROP_HEADER,
    "allow": protocol_pb2.HttpProtocolOptions.ALLOW,
}

#: how long a client may take to send its request headers (slowloris guard)
REQUEST_HEADERS_TIMEOUT = timedelta(seconds=10)
#: at the edge, what one client connection may make Envoy buffer (Envoy's edge guidance)
EDGE_CONNECTION_BUFFER_BYTES = 32 * 1024
#: at the edge, HTTP/2 streams per client connection and flow-control windows
EDGE_H2_MAX_STREAMS = 100
EDGE_H2_STREAM_WINDOW = 64 * 1024
EDGE_H2_CONNECTION_WINDOW = 1024 * 1024


#: one JSON object per request on the gateway's stdout (Envoy command operators)
ACCESS_LOG_FORMAT: dict[str, str] = {
    "time": "%START_TIME%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    "method": "%REQ(:METHOD)%",
    "authority": "%REQ(:AUTHORITY)%",
    "path": "%REQ(:PATH)%",
    "protocol": "%PROTOCOL%",
    "status": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "upstream_cluster": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    "duration_ms": "%DURATION%",
    "attempts": "%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "user_agent": "%REQ(USER-AGENT)%",
}


#: the body of a 403 a sidecar answers itself (RBAC, the decision point, a dependency the
#: caller may not call): why, and the request id to look the decision up with
DENIAL_BODY_FORMAT: dict[str, str] = {
    "status": "%RESPONSE_CODE%",
    "reason": "%LOCAL_REPLY_BODY%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "request_id": "%REQ(X-REQUEST-ID)%",
}
_DENIED = 403


def denial_replies() -> hcm_pb2.LocalReplyConfig:
    """Envoy's own 403s inside the mesh answer ``DENIAL_BODY_FORMAT`` as JSON (e.g. details
    ``rbac_access_denied_matched_policy[svc:default/cart]``); every other local reply keeps
    Envoy's status and body."""
    denied = accesslog_pb2.AccessLogFilter(
        status_code_filter=accesslog_pb2.StatusCodeFilter(
            comparison=accesslog_pb2.ComparisonFilter(
                op=accesslog_pb2.ComparisonFilter.EQ,
                value=base_pb2.RuntimeUInt32(
                    default_value=_DENIED, runtime_key="gossamer.local_reply.denied_status"
                ),
            )
        )
    )
    fmt = struct_pb2.Struct()
    fmt.update(DENIAL_BODY_FORMAT)
    return hcm_pb2.LocalReplyConfig(
        mappers=[
            hcm_pb2.ResponseMapper(
                filter=denied,
                body_format_override=substitution_format_string_pb2.SubstitutionFormatString(
                    json_format=fmt
                ),
            )
        ]
    )


@dataclass(frozen=True, slots=True)
class Edge:
    """Settings of a listener that faces clients outside the mesh (a gateway)."""

    trusted_hops: int = 0


def stdout_access_log() -> accesslog_pb2.AccessLog:
    """Every request as one JSON line on Envoy's stdout (``ACCESS_LOG_FORMAT``)."""
    fmt = struct_pb2.Struct()
    fmt.update(ACCESS_LOG_FORMAT)
    config = stream_pb2.StdoutAccessLog(
        log_format=substitution_format_string_pb2.SubstitutionFormatString(json_format=fmt)
    )
    return accesslog_pb2.AccessLog(name=STDOUT_ACCESS_LOG, typed_config=any_of(config))


def _remove_envoy_headers() -> mutation_rules_pb2.HeaderMutation:
    return mutation_rules_pb2.HeaderMutation(
        remove_on_match=mutation_rules_pb2.HeaderMutation.RemoveOnMatch(
            key_matcher=string_pb2.StringMatcher(prefix=ENVOY_HEADER_PREFIX, ignore_case=True)
        )
    )


def strip_envoy_response_headers() -> hcm_pb2.HttpFilter:
    """An HTTP filter removing every ``x-envoy-*`` response header on its way to the client.

    Placed before the router, it sees every response: from upstream (where the next Envoy
    may have added some) and Envoy's own local replies.
    """
    config = http_header_mutation_pb2.HeaderMutation(
        mutations=http_header_mutation_pb2.Mutations(response_mutations=[_remove_envoy_headers()])
    )
    return hcm_pb2.HttpFilter(name=HEADER_MUTATION_FILTER, typed_config=any_of(config))


def strip_envoy_headers() -> extension_pb2.TypedExtensionConfig:
    """An early header mutation removing every ``x-envoy-*`` request header a client sent.

    It runs before the connection manager reads the request (before X-Forwarded-For
    handling, routing and the router's header-driven retries and timeouts), so the headers
    Envoy adds itself afterwards (e.g. ``x-envoy-external-address``) are kept.
    """
    config = header_mutation_pb2.HeaderMutation(mutations=[_remove_envoy_headers()])
    return extension_pb2.TypedExtensionConfig(
        name=EARLY_HEADER_MUTATION, typed_config=any_of(config)
    )


def http_connection_manager(
    stat_prefix: str,
    mesh: Mesh,
    *,
    rds: str | None = None,
    route_config: route_pb2.RouteConfiguration | None = None,
    edge: Edge | None = None,
) -> hcm_pb2.HttpConnectionManager:
    """An HCM routing by RDS (``rds`` names the route configuration) or an inline table.

    Every HCM has the traffic filters (``filters.traffic_filters``: the local rate limit,
    whose buckets come over ECDS as ``rate_limit.extension_config(stat_prefix, ...)``; the
    global one; fault injection) before its router, so rules configure them per route in
    RDS (and the buckets in ECDS) without changing the listener.
    """
    defaults = mesh.spec.defaults
    # At the edge the router adds no x-envoy-* headers (upstream timings, attempt counts)
    # to what goes out; inside the mesh they help the next hop.
    router = router_pb2.Router(suppress_envoy_headers=edge is not None)
    hcm = HCM(
        stat_prefix=stat_prefix,
        codec_type=HCM.AUTO,
        http_filters=[
            *traffic_filters(stat_prefix, mesh.spec.rateLimit),
            hcm_pb2.HttpFilter(name=ROUTER_FILTER, typed_config=any_of(router)),
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
            # Extended CONNECT (RFC 8441): a WebSocket arrives over HTTP/2 from the caller's
            # sidecar (or an HTTP/2 client) as a CONNECT stream with :protocol websocket.
            allow_connect=True,
        ),
        # WebSocket upgrades pass (HTTP/1.1 Upgrade or extended CONNECT); route timeouts do
        # not cut them, the stream idle timeout does (docs/resources.md, "Protocols").
        upgrade_configs=[HCM.UpgradeConfig(upgrade_type=WEBSOCKET)],
        stream_error_on_invalid_http_message=wrappers_pb2.BoolValue(value=True),
        request_headers_timeout=duration(REQUEST_HEADERS_TIMEOUT),
        stream_idle_timeout=duration(defaults.streamIdleTimeout),
        drain_timeout=duration(defaults.drainTimeout),
        generate_request_id=wrappers_pb2.BoolValue(value=True),
        # Inside the mesh the caller's request id is kept so one id follows a request end
        # to end; at the edge it is replaced, as a client could otherwise choose it.
        preserve_external_request_id=edge is None,
    )
    if edge is None:
        # a denial says why and which request (gateways keep Envoy's replies as they are)
        hcm.local_reply_config.CopyFrom(denial_replies())
    else:
        hcm.use_remote_address.value = True
        hcm.xff_num_trusted_hops = edge.trusted_hops
        # No client may be "internal" (Envoy would keep its request id and mark it with
        # x-envoy-internal). Envoy 1.40 counts no address as internal while
        # internal_address_config is unset; setting it without ranges brings back the old
        # RFC 1918 + loopback list (measured), so it stays unset.
        hcm.early_header_mutation_extensions.append(strip_envoy_headers())
        hcm.forward_client_cert_details = HCM.SANITIZE
        hcm.strip_trailing_host_dot = True
        hcm.strip_any_host_port = True
        hcm.http_filters.insert(0, edge_guard())
        hcm.http_filters.insert(0, strip_envoy_response_headers())
        # One client cannot open many streams or make Envoy buffer much per stream.
        h2 = hcm.http2_protocol_options
        h2.max_concurrent_streams.value = EDGE_H2_MAX_STREAMS
        h2.initial_stream_window_size.value = EDGE_H2_STREAM_WINDOW
        h2.initial_connection_window_size.value = EDGE_H2_CONNECTION_WINDOW
        hcm.access_log.append(stdout_access_log())
    if rds is not None:
        hcm.rds.config_source.CopyFrom(ads_source())
        hcm.rds.route_config_name = rds
    elif route_config is not None:
        hcm.route_config.CopyFrom(route_config)
    else:
        raise ValueError("http_connection_manager needs rds or route_config")
    return hcm


def each_hcm(
    listener: listener_pb2.Listener, edit: Callable[[hcm_pb2.HttpConnectionManager], None]
) -> listener_pb2.Listener:
    """A copy of ``listener`` with ``edit`` applied to every HTTP connection manager in it
    (for a listener built and shared elsewhere)."""
    out = listener_pb2.Listener()
    out.CopyFrom(listener)
    for chain in out.filter_chains:
        for f in chain.filters:
            if f.name != HCM_FILTER:
                continue
            hcm = hcm_pb2.HttpConnectionManager()
            f.typed_config.Unpack(hcm)
            edit(hcm)
            f.typed_config.Pack(hcm, deterministic=True)
    return out
