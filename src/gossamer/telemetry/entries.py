"""One Envoy HTTP access-log entry, plus who reported it, as a plain ``Record``.

Who the reporter is comes only from its stream's node (``Reporter.of``: id and metadata per
``gossamer.node``), and the other end of the edge only from what Envoy itself decided: the
upstream cluster it picked (client view) or the peer certificate it verified (server
view). Nothing a request carries (headers, authority of a routed request) names a source or
destination, so a caller cannot forge an edge (docs/telemetry.md, "Views").

Pure and cheap: ``Recorder.record`` reads only the fields it needs and caches what repeats
(cluster names, SPIFFE ids), since it runs once per request at ingestion rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2

from gossamer.errors import GossamerError
from gossamer.node import parse_node, sds_capable
from gossamer.types import parse_spiffe_id

View = Literal["client", "server"]
NodeKind = Literal["service", "gateway", "external", "unknown"]

#: ``identifier.log_name`` of each kind of access logger the translator sets up
LOG_NAMES: dict[str, View] = {"outbound": "client", "gateway": "client", "inbound": "server"}
#: the source of a server-view request that came without a verified peer certificate
UNAUTHENTICATED = "unauthenticated"
#: custom tag (a literal on the HCM of an ExternalService's listener) marking its requests
#: ``external``; ``gateway`` on a sidecar's listener for an ExternalService reached through
#: an egress gateway, whose ``DESTINATION_TAG`` names the gateway: the destination then,
#: whatever the cluster (named after the ExternalService) says
DESTINATION_KIND_TAG = "gossamer.destination_kind"
GATEWAY_KIND = "gateway"
#: custom tag (route metadata) naming the destination service of a route that has no
#: upstream cluster (a direct response, e.g. a 403 for a caller not granted the service)
DESTINATION_TAG = "gossamer.destination"
#: custom tag (``%UPSTREAM_PEER_URI_SAN%``): the SPIFFE id the client's Envoy verified upstream
UPSTREAM_PEER_TAG = "gossamer.upstream_peer"
#: prefix of a destination named only by the request's authority (no cluster, no tag)
UNKNOWN_PREFIX = "unknown:"

_DOWNSTREAM_END = accesslog_pb2.DownstreamEnd
_NOT_SET = accesslog_pb2.NotSet


class Record(NamedTuple):
    """One counted request. ``status`` 0: no response reached the client (failed)."""

    view: View
    source: str
    source_kind: NodeKind
    destination: str
    destination_kind: NodeKind
    instance: str
    endpoint: str
    minute: int
    status: int
    latency_ms: float
    bytes_received: int
    bytes_sent: int
    mtls: bool
    retries: int
    #: Envoy's response flags as ``%RESPONSE_FLAGS%`` writes them (``UH,URX``; none: ``-``)
    flags: str = "-"
    #: the reporting workload (``ns/name``): the source's in the client view
    workload: str = ""
    #: the SPIFFE id Envoy verified at the other end (client view: the upstream's; server
    #: view: the caller's), and its own (server view: the local certificate's); "" unknown
    peer_principal: str = ""
    local_principal: str = ""


@dataclass(frozen=True, slots=True)
class Reporter:
    """The proxy at the other end of one ALS stream, as it matters to its entries."""

    node_id: str
    view: View
    #: what this proxy is on an edge: ``ns/service`` (sidecar) or ``ns/name`` (gateway)
    id: str
    kind: NodeKind
    #: the workload itself (``ns/name``): the destination instance in the server view
    instance: str
    #: the same HCM also has the denial log (``translate.denial_log``): a sidecar's inbound
    #: whose bootstrap has the agent's SDS cluster (its node says ``gossamer.sds``), as the
    #: translator gives it to every TLS-capable sidecar. Envoy counts that log's entries in
    #: the same ``logs_written``: the reconciliation counts them (``als``)
    denial_log: bool = False

    @classmethod
    def of(cls, node: base_pb2.Node, log_name: str) -> Reporter:
        """Raises ``GossamerError`` naming the field for a node or log name we cannot use."""
        view = LOG_NAMES.get(log_name)
        if view is None:
            raise GossamerError(
                f"identifier.log_name {log_name!r} is not one of {', '.join(LOG_NAMES)}; "
                "the access logger's common_config.log_name must say which side it logs"
            )
        who = parse_node(node)
        kind: NodeKind = "gateway" if who.kind == "gateway" else "service"
        name = who.service if who.kind == "sidecar" and who.service else who.name
        denial_log = view == "server" and who.kind == "sidecar" and sds_capable(node)
        return cls(
            node.id, view, f"{who.namespace}/{name}", kind, f"{who.namespace}/{who.name}",
            denial_log,
        )  # fmt: skip


def outbound_destination(cluster: str) -> str | None:
    """``outbound|<ns>/<svc>|<port>[|<subset>]`` (``translate.names.outbound_cluster``) ->
    ``<ns>/<svc>``; None for any other name."""
    parts = cluster.split("|")
    if len(parts) not in (3, 4) or parts[0] != "outbound" or not parts[2]:
        return None
    ns, sep, svc = parts[1].partition("/")
    return parts[1] if sep and ns and svc and "/" not in svc else None


#: ``ResponseFlags`` field -> Envoy's short name (``%RESPONSE_FLAGS%``, Istio's label)
RESPONSE_FLAG_CODES = {
    "failed_local_healthcheck": "LH",
    "no_healthy_upstream": "UH",
    "upstream_request_timeout": "UT",
    "local_reset": "LR",
    "upstream_remote_reset": "UR",
    "upstream_connection_failure": "UF",
    "upstream_connection_termination": "UC",
    "upstream_overflow": "UO",
    "no_route_found": "NR",
    "delay_injected": "DI",
    "fault_injected": "FI",
    "rate_limited": "RL",
    "unauthorized_details": "UAEX",
    "rate_limit_service_error": "RLSE",
    "downstream_connection_termination": "DC",
    "upstream_retry_limit_exceeded": "URX",
    "stream_idle_timeout": "SI",
    "invalid_envoy_request_headers": "IH",
    "downstream_protocol_error": "DPE",
    "upstream_max_stream_duration_reached": "UMSDR",
    "response_from_cache_filter": "RFCF",
    "no_filter_config_found": "NFCF",
    "duration_timeout": "DT",
    "upstream_protocol_error": "UPE",
    "no_cluster_found": "NC",
    "overload_manager": "OM",
    "dns_resolution_failure": "DF",
    "downstream_remote_reset": "DR",
}


def response_flags(flags: accesslog_pb2.ResponseFlags) -> str:
    """``UH,URX`` (in the message's field order); ``-`` when none is set."""
    codes = [RESPONSE_FLAG_CODES.get(f.name, f.name) for f, v in flags.ListFields() if v]
    return ",".join(codes) or "-"


#: ``RequestMethod`` value -> its name (``METHOD_UNSPECIFIED`` -> ``-``)
_METHODS = {v: ("-" if v == 0 else n) for n, v in base_pb2.RequestMethod.items()}


class Recorder:
    """Turns entries into records; caches parses of repeated cluster names and SANs."""

    def __init__(self) -> None:
        self._clusters: dict[str, str | None] = {}
        self._peers: dict[str, str] = {}
        self._endpoints: dict[tuple[int, str], str] = {}

    def _endpoint(self, method: int, route: str) -> str:
        """``GET <route_name>`` (the endpoint of the contract: method + route)."""
        try:
            return self._endpoints[(method, route)]
        except KeyError:
            if len(self._endpoints) > 100_000:
                self._endpoints.clear()
            found = f"{_METHODS.get(method, str(method))} {route or '-'}"
            self._endpoints[(method, route)] = found
            return found

    def _destination(self, cluster: str) -> str | None:
        try:
            return self._clusters[cluster]
        except KeyError:
            if len(self._clusters) > 100_000:
                self._clusters.clear()
            found = self._clusters[cluster] = outbound_destination(cluster)
            return found

    def _peer(self, uri: str) -> str:
        """``spiffe://td/ns/X/sa/Y`` -> ``X/Y``; anything else stays what it is, prefixed."""
        try:
            return self._peers[uri]
        except KeyError:
            if len(self._peers) > 100_000:
                self._peers.clear()
            try:
                _, ns, sa = parse_spiffe_id(uri)
                found = f"{ns}/{sa}"
            except GossamerError:
                found = f"{UNKNOWN_PREFIX}{uri}"
            self._peers[uri] = found
            return found

    def record(self, reporter: Reporter, entry: accesslog_pb2.HTTPAccessLogEntry) -> Record | None:
        """The entry as a record, or None if it is not a finished request (periodic or
        start entries, ``access_log_type`` other than DownstreamEnd/NotSet)."""
        common = entry.common_properties
        log_type = common.access_log_type
        if log_type != _DOWNSTREAM_END and log_type != _NOT_SET:
            return None
        request = entry.request
        response = entry.response
        tags = common.custom_tags
        if reporter.view == "client":
            source, source_kind = reporter.id, reporter.kind
            cluster = common.upstream_cluster
            marked = tags.get(DESTINATION_KIND_TAG)
            destination_kind: NodeKind = "service"
            if marked == GATEWAY_KIND and tags.get(DESTINATION_TAG):
                destination = None  # through an egress gateway: the hop ends there
            else:
                destination = self._destination(cluster) if cluster else None
            if destination is None:
                destination = tags.get(DESTINATION_TAG) or (
                    f"{UNKNOWN_PREFIX}{cluster or request.authority}"
                )
                if destination.startswith(UNKNOWN_PREFIX):
                    destination_kind = "unknown"
            if marked == "external":
                destination_kind = "external"
            elif marked == GATEWAY_KIND:
                destination_kind = "gateway"
            upstream = common.upstream_remote_address.socket_address
            instance = f"{upstream.address}:{upstream.port_value}" if upstream.address else ""
            peer = tags.get(UPSTREAM_PEER_TAG, "")
            mtls = bool(peer) and peer != "-"
            peer_principal = peer if mtls else ""
            local_principal = ""
            attempts = common.upstream_request_attempt_count
            retries = attempts - 1 if attempts > 1 else 0
        else:
            destination, destination_kind = reporter.id, reporter.kind
            instance = reporter.instance
            tls = common.tls_properties
            sans = tls.peer_certificate_properties.subject_alt_name
            uri = next((s.uri for s in sans if s.uri), "")
            mtls = bool(uri)
            source = self._peer(uri) if uri else UNAUTHENTICATED
            source_kind = "service" if uri else "unknown"
            retries = 0
            peer_principal = uri
            local_principal = ""
            if uri:
                own = tls.local_certificate_properties.subject_alt_name
                local_principal = next((s.uri for s in own if s.uri), "")
        duration = common.duration
        if not (duration.seconds or duration.nanos):  # (Envoys before 1.29 do not set it)
            duration = common.time_to_last_downstream_tx_byte
        latency = duration.seconds * 1000.0 + duration.nanos / 1e6
        return Record(
            reporter.view,
            source,
            source_kind,
            destination,
            destination_kind,
            instance,
            self._endpoint(request.request_method, common.route_name),
            common.start_time.seconds // 60,
            response.response_code.value,
            latency,
            request.request_headers_bytes + request.request_body_bytes,
            response.response_headers_bytes + response.response_body_bytes,
            mtls,
            retries,
            response_flags(common.response_flags) if common.HasField("response_flags") else "-",
            reporter.instance,
            peer_principal,
            local_principal,
        )
