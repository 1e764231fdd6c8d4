"""The agent's end of its sidecars' denial log (``translate/denial_log``): Envoy's gRPC
access log service (``envoy.service.accesslog.v3.AccessLogService``), served on the agent's
SDS socket beside SDS, so the bootstrap needs nothing new.

Each stream's first message names the Envoy (node id) and the log; an Envoy this agent does
not run, or another log, is ignored. Each entry becomes one record of the agent's report
(``DenialShipper``): the Workload whose Envoy decided, the request id, when, the caller's
verified URI SAN, the method, the normalised path without its query string, and why
(``%RESPONSE_CODE_DETAILS%`` for a denial; the shadow policy for an audit-mode would-deny).
Parsing and queueing never wait: Envoy's stream is read as fast as it writes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from gossamer.agent.denial_shipper import DenialShipper
from gossamer.translate.denial_log import (
    DENIAL_LOG_NAME,
    DENIED,
    ENFORCED_RESULT,
    SHADOW_POLICY,
    SHADOW_RESULT,
)
from gossamer.translate.rbac import RBAC_FILTER

log = logging.getLogger(__name__)


def parse_entry(entry: accesslog_pb2.HTTPAccessLogEntry, workload: str) -> dict[str, Any] | None:
    """The report record of one denial-log entry of ``workload``'s Envoy (``NS/NAME``), or
    None if RBAC neither denied nor would have denied it."""
    fields = entry.common_properties.metadata.filter_metadata[RBAC_FILTER].fields
    if fields[ENFORCED_RESULT].string_value == DENIED:
        source, decision = "rbac", "deny"
        reason = entry.response.response_code_details
    elif fields[SHADOW_RESULT].string_value == DENIED:
        source, decision = "rbac-shadow", "would-deny"
        policy = fields[SHADOW_POLICY].string_value or "none"
        reason = f"rbac_shadow_denied_matched_policy[{policy}]"
    else:
        return None
    request = entry.request
    peer = entry.common_properties.tls_properties.peer_certificate_properties
    caller = next((s.uri for s in peer.subject_alt_name if s.uri), "")
    method = base_pb2.RequestMethod.Name(request.request_method)
    return {
        "workload": workload,
        "request_id": request.request_id,
        "at": entry.common_properties.start_time.ToMicroseconds() / 1e6,
        "source": source,
        "decision": decision,
        "caller": caller,
        "method": "OTHER" if method == "METHOD_UNSPECIFIED" else method,
        "path": request.path.split("?", 1)[0].split("#", 1)[0],
        "reason": reason,
    }


class DenialReceiver(als_pb2_grpc.AccessLogServiceServicer):  # type: ignore[misc]
    """``add_to(server)`` before the SDS server starts; ``workloads()`` maps the node id of
    each Envoy this agent runs to its Workload (``NS/NAME``)."""

    def __init__(self, shipper: DenialShipper, workloads: Callable[[], Mapping[str, str]]):
        self.shipper = shipper
        self.workloads = workloads
        self._warned: set[str] = set()

    def add_to(self, server: grpc.aio.Server) -> None:
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(self, server)

    async def StreamAccessLogs(
        self, request_iterator: Any, context: Any
    ) -> als_pb2.StreamAccessLogsResponse:
        workload: str | None = None
        async for message in request_iterator:
            if message.HasField("identifier"):
                workload = self._workload_of(message.identifier)
            if workload is None or not message.HasField("http_logs"):
                continue
            for entry in message.http_logs.log_entry:
                record = parse_entry(entry, workload)
                if record is not None:
                    self.shipper.add(record)
        return als_pb2.StreamAccessLogsResponse()

    def _workload_of(self, identifier: als_pb2.StreamAccessLogsMessage.Identifier) -> str | None:
        node_id = identifier.node.id
        if identifier.log_name != DENIAL_LOG_NAME:
            return None
        workload = self.workloads().get(node_id)
        if workload is None and node_id not in self._warned:
            self._warned.add(node_id)
            log.warning("denial log: %r is not an Envoy this agent runs; ignoring it", node_id)
        return workload
