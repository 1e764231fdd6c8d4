"""``Mesh``: mesh-wide settings and the defaults every route and cluster starts from."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field

from gossamer.model.authentication import MeshAuthentication
from gossamer.model.authorization import MeshAuthorization
from gossamer.model.base import Duration, Resource, Strict, in_range
from gossamer.model.rate_limits import MeshRateLimit
from gossamer.model.route import Retries
from gossamer.model.tls import MtlsMode, duration_between


class Defaults(Strict):
    #: whole-request timeout of a route that sets none (Envoy's own default is a silent 15 s)
    requestTimeout: Duration = timedelta(seconds=30)
    #: a connection idle this long is closed (downstream and upstream)
    idleTimeout: Duration = timedelta(seconds=300)
    #: TCP connect timeout to an upstream (Envoy refuses 0)
    connectTimeout: Annotated[
        Duration,
        duration_between(timedelta(milliseconds=1), timedelta.max, "at least 1ms, e.g. 5s"),
    ] = timedelta(seconds=5)
    #: how long a stream may be idle (no bytes either way) before it is reset
    streamIdleTimeout: Duration = timedelta(seconds=300)
    #: time given to open connections when a listener drains
    drainTimeout: Duration = timedelta(seconds=5)
    #: retries of a route that sets none: safe ones only (the request never reached an app,
    #: or the callee's sidecar answered 503 because its app is gone), each on another host
    retries: Retries = Field(
        default_factory=lambda: Retries(
            attempts=2,
            retryOn=[
                "connect-failure",
                "refused-stream",
                "unavailable",
                "cancelled",
                "retriable-status-codes",
            ],
            statusCodes=[503],
        )
    )


class MeshMtls(Strict):
    """Mutual TLS between the mesh's Envoys (docs/security.md, "mTLS modes")."""

    #: ``strict``: inbound sidecars take only mTLS from the mesh; ``permissive``: mTLS and
    #: plaintext (the default, so a mesh from before mTLS keeps working: every hop between
    #: two Envoys is still mTLS); ``off``: plaintext
    mode: MtlsMode = "permissive"
    #: lifetime of the workload certificates the CA issues (rotated well before expiry)
    certificateTTL: Annotated[
        Duration, duration_between(timedelta(minutes=1), timedelta(hours=24), "1m..24h")
    ] = timedelta(hours=1)


class MeshTracing(Strict):
    #: percent (0..100, e.g. 0.5) of the requests entering the mesh that start a trace
    #: (docs/telemetry.md, "Traces"), in steps of 0.01. 0, the default, is tracing off (as
    #: is a rate that rounds to 0): no proxy has a tracer, so counting costs what it costs
    #: alone. Between rates above 0 it is sent per route
    #: and drains no listener; turning tracing on or off (to or from 0) re-creates every
    #: HTTP listener that traces (open connections drain)
    sampling: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0


class MeshTelemetry(Strict):
    """How proxies report requests to the telemetry service (docs/telemetry.md, "Collection")."""

    #: ``stats``: each request into a tagged latency histogram of Envoy's own stats, pushed
    #: by the stat sink (exact counts, errors, latency, mTLS, topology; the cheapest);
    #: ``logs``: a gRPC access-log entry per request (adds bytes, retries, response flags
    #: and gap reconciliation, at a measured cost). Changing it re-creates every HTTP
    #: listener of every proxy (the access log is in the HCM): open connections drain
    requests: Literal["stats", "logs"] = "stats"


class MeshSpec(Strict):
    #: the SPIFFE trust domain: lowercase letters, digits, '.', '-', '_'
    trustDomain: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[a-z0-9._-]+$")] = (
        "gossamer.local"
    )
    defaults: Defaults = Field(default_factory=Defaults)
    mtls: MeshMtls = Field(default_factory=MeshMtls)
    #: NGAC enforcement at every sidecar's inbound (docs/ngac.md, "Enforcement in Envoy")
    authorization: MeshAuthorization = Field(default_factory=MeshAuthorization)
    #: end users by JWT, decided by the ext_authz decision point (docs/ngac.md, "End users")
    authentication: MeshAuthentication = Field(default_factory=MeshAuthentication)
    #: ``reject`` refuses requests with headers whose names contain '_' (CVE-2019-9900 class);
    #: ``drop`` removes those headers; ``allow`` passes them (not recommended)
    underscoreHeaders: Literal["reject", "drop", "allow"] = "reject"
    #: how proxies use the global rate-limit service (``model.rate_limits``)
    rateLimit: MeshRateLimit = Field(default_factory=MeshRateLimit)
    #: milliseconds of quiet after which a burst of changes is published (a change made
    #: within this long of a publish joins a burst; a lone change is published at once)
    debounceMs: Annotated[int, in_range(0, 10_000)] = 50
    #: OpenTelemetry traces of every proxy, with a telemetry service (``translate.tracing``)
    tracing: MeshTracing = Field(default_factory=MeshTracing)
    #: how requests are counted, with a telemetry service (``translate.telemetry_stats``)
    telemetry: MeshTelemetry = Field(default_factory=MeshTelemetry)


class Mesh(Resource):
    kind: Literal["Mesh"]
    spec: MeshSpec = Field(default_factory=MeshSpec)
