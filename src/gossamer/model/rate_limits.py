"""Global rate limits: what a ``Route`` rule's ``rateLimit: {global: true, ...}`` means.

A global limit is counted by the rate-limit service (``gossamer ratelimit serve``) for every
proxy routing the rule together, in fixed windows of the protocol's units (``1s``, ``1m``,
``1h``, ``1d``). Counters are keyed by (Route, rule name, key value): the rule's ``key``
says which part of a request splits its budget (each API key, each caller, ...), none
means one budget for the rule. docs/traffic.md explains the choices.

``GlobalRule`` is what the control plane serves the service (``GET /v1/ratelimit/rules``)
and what the service decides with; ``global_rules`` derives them from the Routes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from gossamer.model.base import Duration, Strict

if TYPE_CHECKING:
    from gossamer.model.route import Route

#: the protocol's units (``RateLimitResponse.RateLimit.Unit``) a global ``per`` may be
UNITS: dict[timedelta, str] = {
    timedelta(seconds=1): "second",
    timedelta(minutes=1): "minute",
    timedelta(hours=1): "hour",
    timedelta(days=1): "day",
}
UNIT_SECONDS: dict[str, int] = {u: int(d.total_seconds()) for d, u in UNITS.items()}


#: an HTTP header name (a token), matched case-insensitively
HeaderName = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")]


class RateLimitKey(Strict):
    """What splits a global budget: exactly one of these. Requests that lack the part
    (no such header) share one counter of their own."""

    #: the value of this request header (e.g. ``x-api-key``), as the proxy received it
    header: HeaderName | None = None
    #: the calling proxy: at a sidecar the calling Workload's service (Envoy's
    #: ``source_cluster``: ``<namespace>/<service>``), at a gateway the gateway
    caller: Literal[True] | None = None
    #: the client's IP address (at a gateway: as ``trustedHops`` allow it from
    #: X-Forwarded-For; at a sidecar it is the app's loopback address)
    clientAddress: Literal[True] | None = None
    #: the request path, without its query string
    path: Literal[True] | None = None
    #: the request method
    method: Literal[True] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RateLimitKey:
        self.which()
        return self

    def which(self) -> str:
        given = [
            f
            for f in ("header", "caller", "clientAddress", "path", "method")
            if getattr(self, f) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "set exactly one of header, caller, clientAddress, path, method"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return given[0]


class MeshRateLimit(Strict):
    """How every proxy uses the rate-limit service (``Mesh.spec.rateLimit``)."""

    #: when the service cannot answer (down, slow, its Redis down): ``open`` lets the
    #: request through, ``closed`` refuses it. Envoy applies it when the service is
    #: unreachable (``failure_mode_deny``), the service when its counters are
    failureMode: Literal["open", "closed"] = "open"
    #: how long a proxy waits for the service's answer before failing as above
    timeout: Duration = timedelta(milliseconds=100)


def check_global_per(per: timedelta) -> str:
    """The protocol unit of a global ``per``; ``ValueError`` naming the valid ones."""
    unit = UNITS.get(per)
    if unit is None:
        raise ValueError(
            "a global limit counts per 1s, 1m, 1h or 1d (the rate-limit protocol's units); "
            "scale requests to one of them, e.g. 300 per 1m for 5 per 1s over a minute"
        )
    return unit


@dataclass(frozen=True, order=True, slots=True)
class GlobalRule:
    """One globally limited rule as the rate-limit service sees it."""

    #: ``<namespace>/<route>/<rule name>``: the descriptor value the rule's routes emit
    id: str
    requests: int
    #: ``second``, ``minute``, ``hour`` or ``day``
    unit: str
    #: what splits the budget (``RateLimitKey.which``) or ``""`` for one budget
    key: str = ""


def global_rule_id(namespace: str, route: str, rule: str) -> str:
    return f"{namespace}/{route}/{rule}"


def global_rules(routes: Iterable[Route]) -> tuple[GlobalRule, ...]:
    """The globally limited rules of ``routes``, in a stable order."""
    out: list[GlobalRule] = []
    for r in routes:
        for rule in r.spec.rules:
            limit = rule.rateLimit
            if limit is None or not limit.global_ or rule.name is None:
                continue
            key = limit.key.which() if limit.key is not None else ""
            rid = global_rule_id(r.metadata.namespace, r.metadata.name, rule.name)
            out.append(GlobalRule(rid, limit.requests, check_global_per(limit.per), key))
    return tuple(sorted(out))


__all__ = [
    "UNITS",
    "UNIT_SECONDS",
    "GlobalRule",
    "MeshRateLimit",
    "RateLimitKey",
    "check_global_per",
    "global_rule_id",
    "global_rules",
]
