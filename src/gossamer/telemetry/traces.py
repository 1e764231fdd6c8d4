"""OTLP/gRPC traces in: ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

Every Envoy's ``envoy.tracers.opentelemetry`` exports its finished spans here (batched by
Envoy). Each span is reduced to a ``Span`` tuple on the event loop (the hex ids, the
proxy's ``service.name``, times, the HTTP status and Envoy's ``error`` and
``guid:x-request-id`` tags, the other string tags kept for the waterfall) and handed to
the ``TraceSampler`` (``traces_sampling``), which decides per trace what is stored:
storage-only sampling, the metrics come from the access logs and stay exact.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import NamedTuple

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

log = logging.getLogger(__name__)

#: the resource attribute naming the proxy (Envoy's ``service_name``)
SERVICE_NAME = "service.name"
#: the tags Envoy puts on its spans (Envoy's ``Tracing::Tags``)
STATUS_TAG = "http.status_code"
ERROR_TAG = "error"
REQUEST_ID_TAG = "guid:x-request-id"
_STATUS_ERROR = trace_pb2.Status.STATUS_CODE_ERROR
#: span attributes kept per span (the waterfall's details); longer values are cut
_MAX_ATTRIBUTES = 32
_MAX_VALUE = 256


class Span(NamedTuple):
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_id: str  # 16 hex digits, or "" for a root
    service: str
    name: str
    kind: int  # OTLP SpanKind (2 server, 3 client)
    start_ns: int
    end_ns: int
    status: int  # HTTP status, 0 if none
    error: bool
    request_id: str
    attributes: dict[str, str]

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


def _text(value: common_pb2.AnyValue) -> str:
    which = value.WhichOneof("value")
    if which == "string_value":
        return value.string_value[:_MAX_VALUE]
    if which in ("int_value", "bool_value", "double_value"):
        return str(getattr(value, which))
    return ""


def span_of(service: str, span: trace_pb2.Span) -> Span | None:
    """One OTLP span as a ``Span``; None without valid ids (it could not be linked)."""
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        return None
    attributes: dict[str, str] = {}
    for kv in span.attributes[:_MAX_ATTRIBUTES]:
        attributes[kv.key] = _text(kv.value)
    status_text = attributes.pop(STATUS_TAG, "")
    status = int(status_text) if status_text.isdigit() else 0
    error = (
        attributes.pop(ERROR_TAG, "") == "true"
        or span.status.code == _STATUS_ERROR
        or status >= 500
    )
    return Span(
        span.trace_id.hex(),
        span.span_id.hex(),
        span.parent_span_id.hex() if len(span.parent_span_id) == 8 else "",
        service,
        span.name[:_MAX_VALUE],
        int(span.kind),
        int(span.start_time_unix_nano),
        int(span.end_time_unix_nano),
        status,
        error,
        attributes.pop(REQUEST_ID_TAG, ""),
        attributes,
    )


def spans_of(request: trace_service_pb2.ExportTraceServiceRequest) -> list[Span]:
    out: list[Span] = []
    for resource_spans in request.resource_spans:
        service = ""
        for kv in resource_spans.resource.attributes:
            if kv.key == SERVICE_NAME:
                service = _text(kv.value)
                break
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                s = span_of(service, span)
                if s is not None:
                    out.append(s)
    return out


class TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):  # type: ignore[misc]
    """Decodes each export and gives its spans to ``sink`` (``TraceSampler.add``)."""

    def __init__(self, sink: Callable[[list[Span]], None]) -> None:
        self.sink = sink
        self.exports = 0
        self.spans = 0
        self.invalid_spans = 0

    async def Export(  # the protocol's name
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.exports += 1
        spans = spans_of(request)
        given = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        self.spans += len(spans)
        response = trace_service_pb2.ExportTraceServiceResponse()
        if given > len(spans):  # OTLP's partial success: said, not retried by the sender
            self.invalid_spans += given - len(spans)
            response.partial_success.rejected_spans = given - len(spans)
            response.partial_success.error_message = (
                "spans without a 16-byte trace id or an 8-byte span id"
            )
        if spans:
            self.sink(spans)
        return response
