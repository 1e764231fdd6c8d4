"""Access-log entries and an Envoy that sends them, for the telemetry service's tests and
bench (docs/telemetry.md).

``http_entry`` builds an ``HTTPAccessLogEntry`` the way Envoy fills one (common
properties with the upstream cluster and host, the peer certificate's URI SAN, timings,
route name, request and response sizes); ``first_message`` is a stream's first message
(node via ``fill_node``, log name). ``logging_bootstrap`` is a static Envoy whose HTTP
listener routes to one backend and logs every request over
``envoy.access_loggers.http_grpc`` to the telemetry service.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2 as grpc_als_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.service.accesslog.v3 import als_pb2

from gossamer.node import fill_node
from gossamer.telemetry.entries import UPSTREAM_PEER_TAG
from gossamer.testing import resources
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.types import ProxyIdentity

TELEMETRY_CLUSTER = "gossamer-telemetry"
HTTP_GRPC_LOGGER = "envoy.access_loggers.http_grpc"


def first_message(
    who: ProxyIdentity, log_name: str, entries: Iterable[accesslog_pb2.HTTPAccessLogEntry] = ()
) -> als_pb2.StreamAccessLogsMessage:
    message = als_pb2.StreamAccessLogsMessage()
    fill_node(message.identifier.node, who)
    message.identifier.log_name = log_name
    message.http_logs.log_entry.extend(entries)
    return message


def batch(entries: Iterable[accesslog_pb2.HTTPAccessLogEntry]) -> als_pb2.StreamAccessLogsMessage:
    message = als_pb2.StreamAccessLogsMessage()
    message.http_logs.log_entry.extend(entries)
    return message


def http_entry(
    *,
    status: int = 200,
    latency_ms: float = 12.5,
    cluster: str = "",
    upstream: tuple[str, int] | None = ("127.0.0.3", 8080),
    peer_uri: str | None = None,
    route_name: str = "default",
    method: int = base_pb2.GET,
    authority: str = "web.default",
    path: str = "/",
    start_s: int = 1_800_000_000,
    attempts: int = 1,
    request_bytes: tuple[int, int] = (120, 0),
    response_bytes: tuple[int, int] = (90, 300),
    headers: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    log_type: int = accesslog_pb2.DownstreamEnd,
) -> accesslog_pb2.HTTPAccessLogEntry:
    """One entry as Envoy 1.40 fills it for a finished request."""
    entry = accesslog_pb2.HTTPAccessLogEntry(
        protocol_version=accesslog_pb2.HTTPAccessLogEntry.HTTP11
    )
    common = entry.common_properties
    common.access_log_type = log_type
    common.start_time.seconds = start_s
    common.start_time.nanos = 250_000_000
    nanos = int(latency_ms * 1e6)
    common.duration.FromNanoseconds(nanos)
    common.time_to_last_rx_byte.FromNanoseconds(nanos // 20)
    common.time_to_first_upstream_tx_byte.FromNanoseconds(nanos // 10)
    common.time_to_last_downstream_tx_byte.FromNanoseconds(nanos)
    common.downstream_remote_address.socket_address.address = "127.0.0.2"
    common.downstream_remote_address.socket_address.port_value = 40000
    common.downstream_local_address.socket_address.address = "127.0.0.2"
    common.downstream_local_address.socket_address.port_value = 15001
    if cluster:
        common.upstream_cluster = cluster
    if upstream is not None:
        common.upstream_remote_address.socket_address.address = upstream[0]
        common.upstream_remote_address.socket_address.port_value = upstream[1]
    if peer_uri is not None:
        tls = common.tls_properties
        tls.tls_version = accesslog_pb2.TLSProperties.TLSv1_3
        tls.peer_certificate_properties.subject_alt_name.add().uri = peer_uri
        tls.local_certificate_properties.subject_alt_name.add().uri = "spiffe://mesh/ns/x/sa/y"
    common.route_name = route_name
    common.upstream_request_attempt_count = attempts
    common.stream_id = "3f0c1d2e-aaaa-bbbb-cccc-0123456789ab"
    for key, value in (tags or {}).items():
        common.custom_tags[key] = value
    request = entry.request
    request.request_method = method
    request.scheme = "http"
    request.authority = authority
    request.path = path
    request.user_agent = "python-httpx/0.28"
    request.request_id = "5a1b2c3d-0000-4000-8000-00000000abcd"
    request.request_headers_bytes, request.request_body_bytes = request_bytes
    for key, value in (headers or {}).items():
        request.request_headers[key] = value
    response = entry.response
    response.response_code.value = status
    response.response_headers_bytes, response.response_body_bytes = response_bytes
    response.response_code_details = "via_upstream"
    return entry


def logging_bootstrap(
    who: ProxyIdentity,
    *,
    listen: tuple[str, int],
    cluster: str,
    backend: tuple[str, int],
    telemetry: tuple[str, int],
    log_name: str = "outbound",
    route_name: str = "default",
    flush_interval_ms: int = 100,
) -> bootstrap_pb2.Bootstrap:
    """A static Envoy: ``listen`` routes everything to ``cluster`` (the ``backend``) and
    logs each request over gRPC to the telemetry service at ``telemetry``."""
    table = resources.route_configuration("routes", {"*": cluster})
    table.virtual_hosts[0].routes[0].name = route_name
    listener = resources.http_listener("outbound", listen, table)
    hcm = hcm_pb2.HttpConnectionManager()
    listener.filter_chains[0].filters[0].typed_config.Unpack(hcm)
    logger = grpc_als_pb2.HttpGrpcAccessLogConfig()
    common = logger.common_config
    common.log_name = log_name
    common.transport_api_version = config_source_pb2.V3
    common.grpc_service.envoy_grpc.cluster_name = TELEMETRY_CLUSTER
    common.buffer_flush_interval.FromMilliseconds(flush_interval_ms)
    # what the translator sets: the SPIFFE id Envoy verified upstream ("-" or empty: none)
    common.custom_tags.add(tag=UPSTREAM_PEER_TAG).value = "%UPSTREAM_PEER_URI_SAN%"
    hcm.access_log.add(name=HTTP_GRPC_LOGGER).typed_config.Pack(logger, deterministic=True)
    listener.filter_chains[0].filters[0].typed_config.Pack(hcm, deterministic=True)
    bootstrap = static_bootstrap(
        listeners=[listener],
        clusters=[
            resources.static_cluster(cluster, [backend]),
            resources.static_cluster(TELEMETRY_CLUSTER, [telemetry], http2=True),
        ],
    )
    fill_node(bootstrap.node, who)
    return bootstrap
