"""``Route``: HTTP rules for calls to a service (east-west) or through gateways (ingress)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from gossamer.model.base import Duration, Labels, Name, Resource, Strict, in_range
from gossamer.model.route_actions import (
    DirectResponse,
    Fault,
    Headers,
    Mirror,
    OneOf,
    RateLimit,
    Redirect,
    Rewrite,
    re2_regex,
)


class PathMatch(OneOf):
    _choices = ("exact", "prefix", "regex")
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None

    @field_validator("exact", "prefix")
    @classmethod
    def _absolute(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} must start with '/'")
        return v

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        return None if v is None else re2_regex(v)


class HeaderMatch(OneOf):
    _choices = ("exact", "prefix", "regex", "present")
    name: Annotated[str, Field(min_length=1, pattern=r"^:?[A-Za-z0-9!#$%&'*+.^_`|~-]+$")]
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None
    present: bool | None = None
    invert: bool = False

    @field_validator("prefix")
    @classmethod
    def _some_prefix(cls, v: str | None) -> str | None:
        if v == "":  # Envoy's StringMatcher refuses an empty prefix
            raise ValueError("an empty prefix matches every value: use present: true instead")
        return v

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        return None if v is None else re2_regex(v)


class QueryParamMatch(OneOf):
    _choices = ("exact", "regex", "present")
    #: the parameter's name as sent (case-sensitive)
    name: Annotated[str, Field(min_length=1, max_length=1024)]
    exact: str | None = None
    regex: str | None = None
    #: only ``true``: Envoy cannot match an absent parameter
    present: Literal[True] | None = None

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        return None if v is None else re2_regex(v)


class Match(Strict):
    path: PathMatch = Field(default_factory=lambda: PathMatch(prefix="/"))
    headers: list[HeaderMatch] = Field(default_factory=list)
    #: every query parameter match must hold
    queryParams: list[QueryParamMatch] = Field(default_factory=list)
    method: Annotated[str, Field(pattern=r"^[A-Z]+$")] | None = None


class Destination(Strict):
    service: Name
    namespace: Name | None = None
    #: the service port's name; may be omitted when the service has one port
    port: Name | None = None
    #: only workloads with these labels, e.g. ``{version: v2}``
    subset: Labels = Field(default_factory=dict)
    weight: Annotated[int, in_range(0, 100)] = 100


#: Envoy's ``retry_on`` conditions for HTTP answers and connection failures
HTTP_RETRY_ON = (
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "http3-post-connect-failure",
)
#: Envoy's ``retry_on`` conditions for gRPC statuses (``grpc-status`` of a gRPC answer)
GRPC_RETRY_ON = ("cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable")
#: gRPC status numbers, for hints: those Envoy can retry on and the rest
_GRPC_STATUS = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    15: "DATA_LOSS",
    16: "UNAUTHENTICATED",
}

RetryOn = Literal[
    "5xx",
    "gateway-error",
    "reset",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
]


def _default_retry_on() -> list[RetryOn]:
    return ["connect-failure", "refused-stream"]


def _retry_on_hint(value: object) -> str:
    """How to write ``value`` (not a condition) as one, if it looks like one."""
    text = str(value).strip()
    spelled = text.lower().replace("_", "-")
    if spelled in HTTP_RETRY_ON or spelled in GRPC_RETRY_ON:
        return f"write it {spelled!r}"
    if text.isdigit():
        number = int(text)
        if 100 <= number <= 599:
            return "put HTTP statuses in statusCodes with 'retriable-status-codes' in retryOn"
        if number in _GRPC_STATUS:
            spelled = _GRPC_STATUS[number].lower().replace("_", "-")
    if spelled.upper().replace("-", "_") in _GRPC_STATUS.values():
        name = spelled.upper().replace("-", "_")
        if spelled in GRPC_RETRY_ON:
            return f"gRPC status {text} is {spelled!r}"
        return f"gRPC status {name} is not retried by Envoy"
    return ""


def _condition(value: object) -> object:
    """A retry condition as given, or a clear error saying how to write it."""
    if isinstance(value, str) and value in HTTP_RETRY_ON + GRPC_RETRY_ON:
        return value
    hint = _retry_on_hint(value)
    raise ValueError(
        f"{value!r} is not a retry condition"
        + (f" ({hint})" if hint else "")
        + f"; valid are HTTP: {', '.join(HTTP_RETRY_ON)}; gRPC status: {', '.join(GRPC_RETRY_ON)}"
    )


class Retries(Strict):
    attempts: Annotated[int, in_range(0, 10)] = 2
    perTryTimeout: Duration | None = None
    #: named retryOn, not on: YAML 1.1 reads a bare `on` key as true. The gRPC conditions
    #: apply to gRPC answers only (their grpc-status)
    retryOn: list[Annotated[RetryOn, BeforeValidator(_condition)]] = Field(
        default_factory=_default_retry_on
    )
    #: HTTP statuses retried when retryOn has retriable-status-codes (e.g. [503])
    statusCodes: list[Annotated[int, in_range(100, 599)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Retries:
        listed = "retriable-status-codes" in self.retryOn
        if self.statusCodes and not listed:
            raise ValueError(
                f"statusCodes {self.statusCodes} are retried only with "
                "'retriable-status-codes' in retryOn: add it, or drop statusCodes"
            )
        if listed and not self.statusCodes:
            raise ValueError(
                "'retriable-status-codes' needs statusCodes (e.g. [503]) to say which statuses"
            )
        if not self.retryOn and self.attempts > 0:
            raise ValueError(
                "retryOn is empty: nothing would be retried; "
                "set attempts: 0 to turn retries off, or name conditions"
            )
        return self


class Rule(Strict):
    #: names the rule (unique in its Route); a rate-limited rule keeps its bucket across
    #: reordering only when named
    name: Name | None = None
    matches: list[Match] = Field(default_factory=lambda: [Match()], min_length=1)
    #: exactly one of destinations, redirect, directResponse
    destinations: list[Destination] | None = Field(default=None, min_length=1)
    redirect: Redirect | None = None
    directResponse: DirectResponse | None = None
    rewrite: Rewrite | None = None
    headers: Headers | None = None
    mirror: Mirror | None = None
    fault: Fault | None = None
    rateLimit: RateLimit | None = None
    timeout: Duration | None = None
    retries: Retries | None = None

    @field_validator("destinations")
    @classmethod
    def _some_weight(cls, ds: list[Destination] | None) -> list[Destination] | None:
        if ds is not None and sum(d.weight for d in ds) == 0:
            raise ValueError("the weights add up to 0: give at least one destination weight > 0")
        return ds

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        actions = ("destinations", "redirect", "directResponse")
        given = [f for f in actions if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of destinations, redirect, directResponse"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.destinations is None:
            # Only forwarded requests can be rewritten, mirrored, timed out or retried.
            forwarding = ("rewrite", "mirror", "rateLimit", "timeout", "retries")
            extra = [f for f in forwarding if getattr(self, f) is not None]
            if extra:
                raise ValueError(f"{', '.join(extra)} need destinations (this rule answers itself)")
        prefix_of = {
            "rewrite.prefix": self.rewrite.prefix if self.rewrite else None,
            "redirect.prefix": self.redirect.prefix if self.redirect else None,
        }
        for field, value in prefix_of.items():
            if value is not None and any(m.path.regex is not None for m in self.matches):
                hint = "use rewrite.regex" if field == "rewrite.prefix" else "use redirect.path"
                raise ValueError(
                    f"{field} replaces a matched prefix, but a match here is a path regex: "
                    f"{hint}, or match with path.prefix/path.exact"
                )
        return self

    @model_validator(mode="after")
    def _global_limit_named(self) -> Rule:
        if self.rateLimit is not None and self.rateLimit.global_ and self.name is None:
            raise ValueError(
                "a rule with a global rateLimit needs a name: its counters are kept by "
                "(Route, rule name), so give the rule e.g. name: api"
            )
        return self

    def targets(self) -> list[Destination | Mirror]:
        """Every service the rule sends to: its destinations and its mirror."""
        out: list[Destination | Mirror] = list(self.destinations or [])
        return [*out, self.mirror] if self.mirror is not None else out


class RouteSpec(Strict):
    #: east-west: the rules apply to calls to this service from every sidecar that depends on it
    service: Name | None = None
    #: ingress: the rules apply to these gateways (same namespace)
    gateways: list[Name] = Field(default_factory=list)
    #: for gateways: which request hosts these rules serve
    hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    rules: list[Rule] = Field(min_length=1)

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        named = [r.name for r in rules if r.name is not None]
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise ValueError(f"rule names must be unique in a Route: {', '.join(twice)} repeat")
        return rules

    @model_validator(mode="after")
    def _target(self) -> RouteSpec:
        if (self.service is None) == (not self.gateways):
            raise ValueError("set either service (east-west) or gateways (ingress), not both")
        return self


class Route(Resource):
    kind: Literal["Route"]
    spec: RouteSpec
