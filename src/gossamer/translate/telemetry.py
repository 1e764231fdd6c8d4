"""Every request's access log, sent to the telemetry service (``gossamer telemetry serve``;
docs/telemetry.md, "Collection").

With a telemetry service configured (the control plane's ``--telemetry``) and
``Mesh.spec.telemetry.requests: logs`` (the default, ``stats``, counts requests with
Envoy's stats access logger instead: ``translate.telemetry_stats``), every HTTP
connection manager of a sidecar (inbound and each outbound dependency) and the main one of
a gateway carries Envoy's gRPC access logger (``envoy.access_loggers.http_grpc``) to the
cluster ``gossamer_telemetry`` (HTTP/2 to the service's gRPC address). Its ``log_name``
says which side logs: ``inbound`` (the server view), ``outbound`` or ``gateway`` (the
client view). Envoy keeps entries in a buffer per worker and sends them from its own
thread once ``BUFFER_BYTES`` are held or every ``FLUSH_INTERVAL``, so a request never waits
for the service, and a service that is down costs a proxy nothing but the buffer.

Custom tags carry what the service cannot learn from Envoy's own fields (names are shared
with ``gossamer.telemetry.entries``):

- ``gossamer.upstream_peer``: ``%UPSTREAM_PEER_URI_SAN%``, the SPIFFE id the caller's Envoy
  verified upstream (the client view's mTLS);
- ``gossamer.destination``: a literal ``<ns>/<svc>`` on each outbound listener (one listener
  per dependency), so a request that never got an upstream cluster (the 403 of a service
  the caller may not call, a local reply) still names the service it was for;
- ``gossamer.destination_kind``: ``external`` on an ExternalService's listener (a
  sidecar's, or an egress gateway's); ``gateway`` on a sidecar's listener for an
  ExternalService reached through an egress gateway (``spec.via``), whose
  ``gossamer.destination`` then names the gateway: that hop ends there, and the gateway's
  own listener reports the hop to the external service.

The address is fixed for the control plane's lifetime and the tags depend only on the
listener, so the logger never changes a listener after its first version: no drain (but a
change of ``Mesh.spec.telemetry.requests`` swaps the logger, so it re-creates them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import config_source_pb2, grpc_service_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.access_loggers.grpc.v3 import als_pb2
from envoy.type.tracing.v3 import custom_tag_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.mesh import Mesh
from gossamer.model.snapshot import Ref
from gossamer.translate.common import any_of, duration
from gossamer.translate.global_rate_limit import grpc_cluster
from gossamer.translate.hcm import each_hcm

HTTP_GRPC_ACCESS_LOG = "envoy.access_loggers.http_grpc"
#: the telemetry service's cluster in every proxy (while a service is configured)
CLUSTER = "gossamer_telemetry"
#: ``identifier.log_name`` of each side (``gossamer.telemetry.entries.LOG_NAMES``)
INBOUND = "inbound"
OUTBOUND = "outbound"
GATEWAY = "gateway"
#: custom tag names (``gossamer.telemetry.entries``)
UPSTREAM_PEER_TAG = "gossamer.upstream_peer"
DESTINATION_TAG = "gossamer.destination"
DESTINATION_KIND_TAG = "gossamer.destination_kind"
#: how long Envoy may hold entries before sending them: what a reader of the topology
#: waits at most (plus the service's own minute buckets, read from memory)
FLUSH_INTERVAL = timedelta(seconds=1)
#: what a worker buffers before it sends (~25 entries; Envoy's default, set so it stays
#: chosen): measured here, 4 KiB cost more CPU per request and so did 64 KiB (a message
#: as large as HTTP/2's initial window); bench/telemetry_logs.py, docs/telemetry.md "Cost"
BUFFER_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class TelemetryService:
    """Where proxies send access logs (``gossamer telemetry serve --listen``)."""

    host: str
    port: int


def cluster(service: TelemetryService, mesh: Mesh) -> cluster_pb2.Cluster:
    """HTTP/2 (gRPC) to the telemetry service."""
    return grpc_cluster(CLUSTER, service.host, service.port, mesh)


def _tag(name: str, *, value: str = "", literal: str = "") -> custom_tag_pb2.CustomTag:
    if literal:
        return custom_tag_pb2.CustomTag(
            tag=name, literal=custom_tag_pb2.CustomTag.Literal(value=literal)
        )
    return custom_tag_pb2.CustomTag(tag=name, value=value)


def _access_log(log_name: str, literals: tuple[tuple[str, str], ...]) -> accesslog_pb2.AccessLog:
    tags = [_tag(name, literal=value) for name, value in literals]
    if log_name != INBOUND:  # the server view reads the peer certificate Envoy verified
        tags.insert(0, _tag(UPSTREAM_PEER_TAG, value="%UPSTREAM_PEER_URI_SAN%"))
    config = als_pb2.HttpGrpcAccessLogConfig(
        common_config=als_pb2.CommonGrpcAccessLogConfig(
            log_name=log_name,
            grpc_service=grpc_service_pb2.GrpcService(
                envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=CLUSTER)
            ),
            transport_api_version=config_source_pb2.V3,
            buffer_flush_interval=duration(FLUSH_INTERVAL),
            buffer_size_bytes=wrappers_pb2.UInt32Value(value=BUFFER_BYTES),
            custom_tags=tags,
        ),
    )
    return accesslog_pb2.AccessLog(name=HTTP_GRPC_ACCESS_LOG, typed_config=any_of(config))


@lru_cache(maxsize=4096)
def _cached(log_name: str, literals: tuple[tuple[str, str], ...]) -> accesslog_pb2.AccessLog:
    return _access_log(log_name, literals)


def access_log(log_name: str, tags: Mapping[str, str] | None = None) -> accesslog_pb2.AccessLog:
    """The logger of one HCM (``log_name``: ``INBOUND``, ``OUTBOUND`` or ``GATEWAY``), with
    ``tags`` as literal custom tags. Shared: copy it (``access_log.append`` does)."""
    return _cached(log_name, tuple(sorted((tags or {}).items())))


def outbound_tags(ref: Ref, *, external: bool = False, via: Ref | None = None) -> dict[str, str]:
    """The literal tags of a listener whose requests all go to ``ref``: a sidecar's for a
    dependency, an egress gateway's for an ExternalService (``external``). ``via``: the
    requests go to that egress gateway, which calls ``ref`` (``spec.via``), so the hop is
    to the gateway (kind ``gateway``), whatever the cluster's name says."""
    if via is not None:
        return {DESTINATION_TAG: f"{via[0]}/{via[1]}", DESTINATION_KIND_TAG: "gateway"}
    tags = {DESTINATION_TAG: f"{ref[0]}/{ref[1]}"}
    if external:
        tags[DESTINATION_KIND_TAG] = "external"
    return tags


def logging(listener: listener_pb2.Listener, log: accesslog_pb2.AccessLog) -> listener_pb2.Listener:
    """A copy of ``listener`` whose every HTTP connection manager also logs to ``log``
    (for a listener built and shared elsewhere: an ExternalService's)."""
    return each_hcm(listener, lambda hcm: hcm.access_log.append(log))
