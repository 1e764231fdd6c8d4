"""``TrafficPolicy``: how callers (sidecars and gateways alike) treat a service, or one
subset of it: load balancing, circuit breaking, the retry budget, outlier detection, active
health checks, and the inbound rate limit at the service's own sidecars.

A policy with ``subset`` applies to that subset's cluster (the one a Route destination with
the same ``subset`` sends to) and replaces the service's policy there as a whole: fields it
leaves out get the defaults, not the service-wide policy's values.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, model_validator

from gossamer.model.base import Duration, Labels, Name, Resource, Strict, in_range
from gossamer.model.tls import duration_between

#: Envoy's circuit-breaker thresholds are uint32
_MAX_U32 = 2**32 - 1
Count = Annotated[int, in_range(1, _MAX_U32)]
Algorithm = Literal["roundRobin", "leastRequest", "random", "ringHash", "maglev"]
#: the algorithms that pick a host by hashing the request (and so take ``hash``)
HASHING: frozenset[str] = frozenset({"ringHash", "maglev"})
#: the default retry budget of every cluster a caller has (percent, minConcurrency)
DEFAULT_RETRY_BUDGET = (20.0, 3)


#: a duration longer than 0
Positive = Annotated[
    Duration,
    duration_between(
        timedelta(milliseconds=1), timedelta(hours=10_000), "longer than 0 (e.g. '1s')"
    ),
]


class HashCookie(Strict):
    #: the cookie's name; with ``ttl`` Envoy sets the cookie when the request has none
    name: Annotated[str, Field(min_length=1, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")]
    ttl: Duration | None = None


class Hash(Strict):
    """What a ``ringHash``/``maglev`` balancer hashes: exactly one of these."""

    #: a request header's value (requests without it go to a random host)
    header: Annotated[str, Field(min_length=1, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")] | None = (
        None
    )
    cookie: HashCookie | None = None
    #: the client's address: only at gateways (behind a sidecar every request comes from
    #: the app's own loopback address)
    sourceIP: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Hash:
        given = [f for f in ("header", "cookie", "sourceIP") if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("set exactly one of header, cookie, sourceIP")
        return self


class LoadBalancer(Strict):
    algorithm: Algorithm = "roundRobin"
    hash: Hash | None = None

    @model_validator(mode="after")
    def _hash_with_hashing(self) -> LoadBalancer:
        if self.hash is not None and self.algorithm not in HASHING:
            raise ValueError(
                f"hash is only used by ringHash and maglev, not {self.algorithm}: "
                "remove it or choose one of those"
            )
        if self.hash is None and self.algorithm in HASHING:
            raise ValueError(
                f"{self.algorithm} needs hash (e.g. hash: {{header: x-user}}): without it "
                "every request goes to a random host"
            )
        return self


class CircuitBreaker(Strict):
    """Envoy's thresholds; an unset one keeps Envoy's default (1024 each, 3 retries)."""

    maxConnections: Count | None = None
    maxPendingRequests: Count | None = None
    maxRequests: Count | None = None
    #: concurrent retries; only without ``retryBudget`` (the budget replaces it)
    maxRetries: Annotated[int, in_range(0, _MAX_U32)] | None = None


class RetryBudget(Strict):
    """Concurrent retries at most ``percent`` of the active requests (never fewer than
    ``minConcurrency``): retries cannot multiply an outage."""

    percent: Annotated[float, Field(ge=0, le=100)] = DEFAULT_RETRY_BUDGET[0]
    minConcurrency: Annotated[int, in_range(0, _MAX_U32)] = DEFAULT_RETRY_BUDGET[1]


class OutlierDetection(Strict):
    """Eject a host that answers ``consecutive5xx`` 5xx (or fails to connect) in a row."""

    consecutive5xx: Annotated[int, in_range(1, _MAX_U32)] = 5
    interval: Positive = timedelta(seconds=10)
    baseEjectionTime: Positive = timedelta(seconds=30)
    maxEjectionPercent: Annotated[int, in_range(0, 100)] = 10


class HttpCheck(Strict):
    path: Annotated[str, Field(pattern=r"^/")] = "/"


class HealthCheck(Strict):
    """An active check; ``http`` asks ``path`` for a 2xx, else a TCP connect."""

    http: HttpCheck | None = None
    interval: Positive = timedelta(seconds=5)
    timeout: Positive = timedelta(seconds=1)
    unhealthyThreshold: Annotated[int, in_range(1, 100)] = 2
    healthyThreshold: Annotated[int, in_range(1, 100)] = 1

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HealthCheck:
        if self.timeout > self.interval:
            raise ValueError("timeout must not be longer than interval")
        return self


#: what a ``rateLimit`` figure counts: each sidecar's requests, or the whole service's
RateLimitScope = Literal["instance", "service"]


class RateLimit(Strict):
    """At most ``requests`` per ``per`` (429 beyond), enforced at the service's sidecars,
    inbound: at **each** of them (``scope: instance``, the default), or at all of them
    together (``scope: service``: each healthy instance takes its share, ``requests``
    divided by their number, which Envoy learns from its local cluster; see
    ``translate.local_cluster``)."""

    requests: Count
    #: Envoy refills token buckets at most every 50 ms
    per: Annotated[
        Duration,
        duration_between(timedelta(milliseconds=50), timedelta(hours=10_000), "at least 50ms"),
    ]
    scope: RateLimitScope = "instance"


class TrafficPolicySpec(Strict):
    #: the Service (in the policy's namespace) whose callers this shapes
    service: Name
    #: only that subset's cluster (a Route destination with the same subset)
    subset: Labels = Field(default_factory=dict)
    loadBalancer: LoadBalancer = Field(default_factory=LoadBalancer)
    circuitBreaker: CircuitBreaker | None = None
    #: default: ``DEFAULT_RETRY_BUDGET``, unless ``circuitBreaker.maxRetries`` is set
    retryBudget: RetryBudget | None = None
    outlierDetection: OutlierDetection | None = None
    healthCheck: HealthCheck | None = None
    rateLimit: RateLimit | None = None

    @model_validator(mode="after")
    def _budget_or_max_retries(self) -> TrafficPolicySpec:
        if (
            self.retryBudget is not None
            and self.circuitBreaker is not None
            and self.circuitBreaker.maxRetries is not None
        ):
            raise ValueError(
                "set retryBudget or circuitBreaker.maxRetries, not both: with a budget "
                "Envoy ignores maxRetries"
            )
        return self

    @model_validator(mode="after")
    def _service_scope_whole_service(self) -> TrafficPolicySpec:
        if self.subset and self.rateLimit is not None and self.rateLimit.scope == "service":
            raise ValueError(
                "rateLimit.scope 'service' is one figure for the whole service, shared by "
                "its healthy instances: set it on the policy without subset, or use "
                "scope: instance here (the figure at each instance of the subset)"
            )
        return self


class TrafficPolicy(Resource):
    kind: Literal["TrafficPolicy"]
    spec: TrafficPolicySpec

    @property
    def subset_key(self) -> tuple[tuple[str, str], ...]:
        """The subset as sorted (key, value) pairs, as clusters are keyed."""
        return tuple(sorted(self.spec.subset.items()))
