"""The denial log of a sidecar's inbound: what its compiled RBAC denied, or in audit mode
would have denied, sent to the host's agent (docs/ngac.md, "The audit trail of requests").

An access log on the inbound HCM, filtered on the RBAC filter's dynamic metadata, so an
allowed request costs one metadata lookup and nothing is sent for it:

- ``enforced_engine_result: denied`` — the RBAC filter answered 403 (Envoy 1.40 sets it
  with ``%RESPONSE_CODE_DETAILS%`` ``rbac_access_denied_matched_policy[<action name>]``);
- ``shadow_engine_result: denied`` — a route's ``shadow_matcher`` (audit mode) would have.

Entries go out as Envoy's gRPC access log (``envoy.service.accesslog.v3``) over the
bootstrap's ``gossamer-sds`` cluster, the agent's Unix socket, where the agent serves
``AccessLogService`` beside SDS (``agent/denial_receiver``). Only proxies whose bootstrap
has that cluster (TLS-capable sidecars) get it. Envoy buffers and sends from its own
thread: a slow or absent agent never holds a request.

Envoy counts this logger's entries in the same ``logs_written`` as the telemetry service's
request log, so that service counts each inbound entry ``logged_as_denial`` says this log
also got (docs/telemetry.md, "Loss"): one predicate for both, over ``DENIAL_KEYS``.
"""

from __future__ import annotations

from datetime import timedelta

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, config_source_pb2, grpc_service_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.type.matcher.v3 import metadata_pb2, string_pb2, value_pb2
from google.protobuf import wrappers_pb2

from gossamer.translate.common import any_of, duration
from gossamer.translate.names import SDS_CLUSTER
from gossamer.translate.rbac import RBAC_FILTER

HTTP_GRPC_ACCESS_LOG = "envoy.access_loggers.http_grpc"
#: the ``log_name`` the agent tells denial logs by
DENIAL_LOG_NAME = "gossamer-denials"
#: the RBAC filter's dynamic metadata keys (Envoy 1.40) and the value of a denial
ENFORCED_RESULT = "enforced_engine_result"
SHADOW_RESULT = "shadow_engine_result"
SHADOW_POLICY = "shadow_effective_policy_id"
DENIED = "denied"
#: the entries kept: those whose RBAC metadata has ``DENIED`` under any of these keys
DENIAL_KEYS = (ENFORCED_RESULT, SHADOW_RESULT)
#: how long Envoy may hold entries before sending them
FLUSH_INTERVAL = timedelta(milliseconds=500)


def _denied(key: str) -> accesslog_pb2.AccessLogFilter:
    return accesslog_pb2.AccessLogFilter(
        metadata_filter=accesslog_pb2.MetadataFilter(
            matcher=metadata_pb2.MetadataMatcher(
                filter=RBAC_FILTER,
                path=[metadata_pb2.MetadataMatcher.PathSegment(key=key)],
                value=value_pb2.ValueMatcher(string_match=string_pb2.StringMatcher(exact=DENIED)),
            ),
            match_if_key_not_found=wrappers_pb2.BoolValue(value=False),
        )
    )


def denial_filter() -> accesslog_pb2.AccessLogFilter:
    """Only what the RBAC filter denied or would have denied."""
    return accesslog_pb2.AccessLogFilter(
        or_filter=accesslog_pb2.OrFilter(filters=[_denied(key) for key in DENIAL_KEYS])
    )


def logged_as_denial(metadata: base_pb2.Metadata) -> bool:
    """Does ``denial_filter`` keep an entry with this dynamic metadata (an access-log
    entry's ``common_properties.metadata``)? A value that is not the string ``DENIED``, or
    no value, does not match, as in Envoy's ``MetadataMatcher``."""
    rbac = metadata.filter_metadata.get(RBAC_FILTER)  # (``[]`` would insert it)
    if rbac is None:
        return False
    fields = rbac.fields
    for key in DENIAL_KEYS:
        value = fields.get(key)
        if value is not None and value.string_value == DENIED:
            return True
    return False


def denial_access_log() -> accesslog_pb2.AccessLog:
    """The inbound HCM's denial log, to the host's agent over ``gossamer-sds``."""
    config = als_pb2.HttpGrpcAccessLogConfig(
        common_config=als_pb2.CommonGrpcAccessLogConfig(
            log_name=DENIAL_LOG_NAME,
            grpc_service=grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=SDS_CLUSTER)
            ),
            transport_api_version=config_source_pb2.V3,
            buffer_flush_interval=duration(FLUSH_INTERVAL),
        )
    )
    return accesslog_pb2.AccessLog(
        name=HTTP_GRPC_ACCESS_LOG, filter=denial_filter(), typed_config=any_of(config)
    )
