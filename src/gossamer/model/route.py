"""``Route``: HTTP rules for calls to a service (east-west) or through gateways (ingress)."""

from __future__ import annotations

from typing import Annotated, Literal

import re2  # type: ignore[import-untyped]
from pydantic import Field, field_validator, model_validator

from gossamer.model.base import Duration, Labels, Name, Resource, Strict, in_range


def _regex(value: str) -> str:
    """Envoy matches with RE2 (no lookaround, no backreferences): check with RE2 itself."""
    options = re2.Options()
    options.log_errors = False
    try:
        re2.compile(value, options=options)
    except re2.error as e:
        reason = e.args[0].decode() if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ValueError(
            f"{value!r} is not a valid regular expression: {reason} (Envoy uses RE2: no "
            "lookaround, no backreferences)"
        ) from None
    return value


class _OneOf(Strict):
    """Exactly one of the fields named in ``_choices`` is set."""

    _choices: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _exactly_one(self) -> _OneOf:
        given = [c for c in self._choices if getattr(self, c) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of {', '.join(self._choices)}")
        return self


class PathMatch(_OneOf):
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
        return None if v is None else _regex(v)


class HeaderMatch(_OneOf):
    _choices = ("exact", "prefix", "regex", "present")
    name: Annotated[str, Field(min_length=1, pattern=r"^:?[A-Za-z0-9!#$%&'*+.^_`|~-]+$")]
    exact: str | None = None
    prefix: str | None = None
    regex: str | None = None
    present: bool | None = None
    invert: bool = False

    @field_validator("regex")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        return None if v is None else _regex(v)


class Match(Strict):
    path: PathMatch = Field(default_factory=lambda: PathMatch(prefix="/"))
    headers: list[HeaderMatch] = Field(default_factory=list)
    method: Annotated[str, Field(pattern=r"^[A-Z]+$")] | None = None


class Destination(Strict):
    service: Name
    namespace: Name | None = None
    #: the service port's name; may be omitted when the service has one port
    port: Name | None = None
    #: only workloads with these labels, e.g. ``{version: v2}``
    subset: Labels = Field(default_factory=dict)
    weight: Annotated[int, in_range(0, 100)] = 100


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


class Retries(Strict):
    attempts: Annotated[int, in_range(0, 10)] = 2
    perTryTimeout: Duration | None = None
    #: named retryOn, not on: YAML 1.1 reads a bare `on` key as true
    retryOn: list[RetryOn] = Field(default_factory=_default_retry_on)
    #: HTTP statuses retried when retryOn has retriable-status-codes (e.g. [503])
    statusCodes: list[Annotated[int, in_range(100, 599)]] = Field(default_factory=list)


class Rule(Strict):
    matches: list[Match] = Field(default_factory=lambda: [Match()], min_length=1)
    destinations: list[Destination] = Field(min_length=1)
    timeout: Duration | None = None
    retries: Retries | None = None

    @field_validator("destinations")
    @classmethod
    def _some_weight(cls, ds: list[Destination]) -> list[Destination]:
        if sum(d.weight for d in ds) == 0:
            raise ValueError("the weights add up to 0: give at least one destination weight > 0")
        return ds


class RouteSpec(Strict):
    #: east-west: the rules apply to calls to this service from every sidecar that depends on it
    service: Name | None = None
    #: ingress: the rules apply to these gateways (same namespace)
    gateways: list[Name] = Field(default_factory=list)
    #: for gateways: which request hosts these rules serve
    hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    rules: list[Rule] = Field(min_length=1)

    @model_validator(mode="after")
    def _target(self) -> RouteSpec:
        if (self.service is None) == (not self.gateways):
            raise ValueError("set either service (east-west) or gateways (ingress), not both")
        return self


class Route(Resource):
    kind: Literal["Route"]
    spec: RouteSpec
