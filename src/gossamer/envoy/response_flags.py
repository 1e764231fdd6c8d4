"""Envoy 1.40's response flags (``%RESPONSE_FLAGS%``), each with one line saying what it
means for whoever reads a log, a stat or ``gossamer describe``.

The one table of them: ``gossamer describe`` explains the flags it counts from Envoy's
stats with it, and telemetry (access logs) will explain the flags of each request with
it. The order and the long names are Envoy's (``CoreResponseFlag``,
``source/common/stream_info/utility.h``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ResponseFlag:
    #: the short form in access logs (``UO``)
    code: str
    #: Envoy's long form (``UpstreamOverflow``), as ``%RESPONSE_FLAGS_LONG%`` writes it
    name: str
    #: what it means, in one line
    meaning: str

    def explained(self) -> str:
        """``UO: circuit breaker open (...)``."""
        return f"{self.code}: {self.meaning}"


FLAGS: tuple[ResponseFlag, ...] = (
    ResponseFlag("LH", "FailedLocalHealthCheck", "local service failed its health check (503)"),
    ResponseFlag("UH", "NoHealthyUpstream", "no healthy upstream host in the cluster (503)"),
    ResponseFlag("UT", "UpstreamRequestTimeout", "upstream request timeout (504)"),
    ResponseFlag("LR", "LocalReset", "connection local reset (503)"),
    ResponseFlag("UR", "UpstreamRemoteReset", "upstream remote reset (503)"),
    ResponseFlag("UF", "UpstreamConnectionFailure", "upstream connection failure (503)"),
    ResponseFlag(
        "UC", "UpstreamConnectionTermination", "upstream connection terminated mid-request (503)"
    ),
    ResponseFlag(
        "UO",
        "UpstreamOverflow",
        "circuit breaker open: upstream overflow, too many connections or requests (503)",
    ),
    ResponseFlag("NR", "NoRouteFound", "no route: no route matched the request (404)"),
    ResponseFlag("DI", "DelayInjected", "delayed by fault injection"),
    ResponseFlag("FI", "FaultInjected", "aborted by fault injection with its status"),
    ResponseFlag("RL", "RateLimited", "rate limited locally by the rate-limit filter (429)"),
    ResponseFlag(
        "UAEX", "UnauthorizedExternalService", "denied by the external authorization service"
    ),
    ResponseFlag(
        "RLSE", "RateLimitServiceError", "the rate-limit service failed, and failed closed"
    ),
    ResponseFlag(
        "DC", "DownstreamConnectionTermination", "the client closed its connection mid-request"
    ),
    ResponseFlag(
        "URX",
        "UpstreamRetryLimitExceeded",
        "retries exhausted: the retry limit or budget was reached, the last answer returned",
    ),
    ResponseFlag("SI", "StreamIdleTimeout", "stream idle timeout (408 or 504)"),
    ResponseFlag(
        "IH",
        "InvalidEnvoyRequestHeaders",
        "refused: an x-envoy-* request header had an invalid value (400)",
    ),
    ResponseFlag("DPE", "DownstreamProtocolError", "HTTP protocol error from the client"),
    ResponseFlag(
        "UMSDR", "UpstreamMaxStreamDurationReached", "upstream request reached its max duration"
    ),
    ResponseFlag("RFCF", "ResponseFromCacheFilter", "answered from the cache filter"),
    ResponseFlag("NFCF", "NoFilterConfigFound", "a filter's configuration was not found (500)"),
    ResponseFlag("DT", "DurationTimeout", "the request or connection exceeded its max duration"),
    ResponseFlag("UPE", "UpstreamProtocolError", "HTTP protocol error from the upstream"),
    ResponseFlag("NC", "NoClusterFound", "the route's cluster was not found (503)"),
    ResponseFlag("OM", "OverloadManagerTerminated", "refused by the overload manager (503)"),
    ResponseFlag("DF", "DnsResolutionFailed", "DNS resolution of the upstream failed (503)"),
    ResponseFlag("DO", "DropOverload", "dropped by the cluster's drop_overload setting (503)"),
    ResponseFlag("DR", "DownstreamRemoteReset", "the client reset the stream"),
    ResponseFlag(
        "UDO",
        "UnconditionalDropOverload",
        "dropped: the cluster's drop_overload is 100 % (503)",
    ),
)

BY_CODE: dict[str, ResponseFlag] = {f.code: f for f in FLAGS}


def flag(code: str) -> ResponseFlag:
    """The flag ``code`` (``KeyError`` for a code Envoy 1.40 does not have)."""
    return BY_CODE[code]


def explain(codes: str) -> list[str]:
    """Each flag of an access log's ``%RESPONSE_FLAGS%`` (``UO,URX``; ``-`` for none),
    explained; a code this table does not know is said to be unknown."""
    out: list[str] = []
    for code in (c.strip() for c in codes.split(",")):
        if not code or code == "-":
            continue
        known = BY_CODE.get(code)
        out.append(known.explained() if known else f"{code}: not a response flag of Envoy 1.40")
    return out
