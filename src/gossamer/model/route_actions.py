"""What a ``Route`` rule does besides choosing destinations: rewrites, header changes,
redirects, direct responses, mirroring, faults and rate limits.

Everything Envoy would refuse (or silently mis-apply) is refused here, naming the field:
pseudo-headers and ``host`` in header changes, ``%`` is literal (escaped on translation),
bodies over Envoy's 4 KiB direct-response limit, fault statuses outside 200..599, token
buckets refilled more often than every 50 ms.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

import re2  # type: ignore[import-untyped]
from pydantic import AfterValidator, Field, field_validator, model_validator

from gossamer.model.base import Duration, Labels, Name, Port, Strict, in_range
from gossamer.model.rate_limits import RateLimitKey, check_global_per

#: Envoy's default ``max_direct_response_body_size_bytes``
MAX_DIRECT_BODY_BYTES = 4096
#: Envoy refuses token buckets refilled more often than this
MIN_FILL_INTERVAL = timedelta(milliseconds=50)


def re2_regex(value: str) -> str:
    """Envoy matches with RE2 (no lookaround, no backreferences): check with RE2 itself."""
    if not value:  # Envoy's RegexMatcher refuses an empty regex
        raise ValueError("an empty regular expression: write '.*' to match anything")
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


class OneOf(Strict):
    """Exactly one of the fields named in ``_choices`` is set."""

    _choices: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _exactly_one(self) -> OneOf:
        given = [c for c in self._choices if getattr(self, c) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of {', '.join(self._choices)}")
        return self


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must start with '/'")
    if any(c < " " or c == "\x7f" or c in " ?#" for c in value):
        raise ValueError(f"{value!r} must be a plain path: no spaces, '?', '#' or control bytes")
    return value


def _header_name(value: str) -> str:
    if value.startswith(":") or value.lower() == "host":
        raise ValueError(
            f"{value!r} cannot be changed by a rule (Envoy refuses pseudo-headers and host): "
            "use rewrite.host to change the host"
        )
    return value.lower()


def _header_value(value: str) -> str:
    if any(c in "\r\n\0" for c in value):
        raise ValueError(f"{value!r} has a CR, LF or NUL: header values are one line")
    return value


def _host(value: str) -> str:
    if not value or any(c <= " " or c in "/?#@" or c == "\x7f" for c in value):
        raise ValueError(f"{value!r} is not a host name: write e.g. 'api.example.com'")
    return value


#: a header name (an HTTP token; not a pseudo-header, not ``host``), stored in lowercase
HeaderName = Annotated[
    str,
    Field(min_length=1, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"),
    AfterValidator(_header_name),
]
HeaderValue = Annotated[str, AfterValidator(_header_value)]
AbsolutePath = Annotated[str, AfterValidator(_absolute)]
Host = Annotated[str, Field(max_length=253), AfterValidator(_host)]
#: a share of requests, 0..100 (fractions allowed, to a ten-thousandth of a percent)
Percent = Annotated[float, Field(ge=0, le=100)]


class RegexRewrite(Strict):
    #: RE2; every match in the path is replaced
    pattern: Annotated[str, AfterValidator(re2_regex)]
    #: may refer to groups as ``\1``
    substitution: str


class Rewrite(Strict):
    """How the request is changed before it goes on (not with ``redirect``)."""

    #: replaces the matched prefix (or exact path): only with prefix or exact path matches
    prefix: AbsolutePath | None = None
    #: for any path match (needed for regex matches): replace what ``pattern`` matches
    regex: RegexRewrite | None = None
    #: the Host (``:authority``) the destination sees
    host: Host | None = None

    @model_validator(mode="after")
    def _something(self) -> Rewrite:
        if self.prefix is not None and self.regex is not None:
            raise ValueError("set prefix or regex, not both")
        if self.prefix is None and self.regex is None and self.host is None:
            raise ValueError("set at least one of prefix, regex, host")
        return self


class HeaderChanges(Strict):
    #: replace (or add) these headers
    set: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    #: add a value, keeping any the message has
    add: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    #: remove these headers
    remove: list[HeaderName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _once(self) -> HeaderChanges:
        both = sorted(set(self.set) & set(self.add))
        if both:
            raise ValueError(f"{', '.join(both)}: in both set and add; keep one")
        return self


class Headers(Strict):
    request: HeaderChanges | None = None
    response: HeaderChanges | None = None


class Redirect(Strict):
    """Answer with a redirect instead of forwarding."""

    #: replaces the matched prefix (or exact path): only with prefix or exact path matches
    prefix: AbsolutePath | None = None
    #: replaces the whole path (the query string is kept)
    path: AbsolutePath | None = None
    scheme: Literal["http", "https"] | None = None
    host: Host | None = None
    port: Port | None = None
    status: Literal[301, 302, 303, 307, 308] = 301

    @model_validator(mode="after")
    def _somewhere(self) -> Redirect:
        if self.prefix is not None and self.path is not None:
            raise ValueError("set prefix or path, not both")
        if all(v is None for v in (self.prefix, self.path, self.scheme, self.host, self.port)):
            raise ValueError(
                "a redirect to the same URL would loop: set at least one of prefix, path, "
                "scheme, host, port"
            )
        return self


class DirectResponse(Strict):
    """Answer from the proxy itself."""

    status: Annotated[int, in_range(200, 599)]
    body: str = ""

    @field_validator("body")
    @classmethod
    def _small(cls, v: str) -> str:
        if len(v.encode()) > MAX_DIRECT_BODY_BYTES:
            raise ValueError(
                f"is {len(v.encode())} bytes: Envoy serves at most {MAX_DIRECT_BODY_BYTES}"
            )
        return v


class Mirror(Strict):
    """A fire-and-forget copy of each matching request; its answer is thrown away."""

    service: Name
    namespace: Name | None = None
    port: Name | None = None
    subset: Labels = Field(default_factory=dict)
    percent: Percent = 100


class FaultDelay(Strict):
    duration: Duration
    percent: Percent

    @field_validator("duration")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v <= timedelta(0):
            raise ValueError("must be more than 0")
        return v


class FaultAbort(Strict):
    status: Annotated[int, in_range(200, 599)]
    percent: Percent


class Fault(Strict):
    """Injected before the request is forwarded: the caller sees them, the service does not."""

    delay: FaultDelay | None = None
    abort: FaultAbort | None = None

    @model_validator(mode="after")
    def _something(self) -> Fault:
        if self.delay is None and self.abort is None:
            raise ValueError("set delay, abort or both")
        return self


class RateLimit(Strict):
    """At most ``requests`` per ``per`` through each proxy routing the rule; 429 beyond.
    With ``global: true`` the rate-limit service counts for every proxy together, in
    fixed windows (``model.rate_limits``; the rule needs a ``name``)."""

    requests: Annotated[int, Field(ge=1, le=1_000_000_000)]
    per: Duration
    #: a limit shared by every proxy (counted by ``gossamer ratelimit serve``)
    global_: Annotated[bool, Field(alias="global")] = False
    #: global only: what splits the budget (one counter per header value, caller, ...)
    key: RateLimitKey | None = None

    @field_validator("per", mode="before")
    @classmethod
    def _days(cls, v: object) -> object:
        """``1d``, the protocol's longest unit (durations elsewhere stop at hours)."""
        if isinstance(v, str) and v.strip().endswith("d") and v.strip()[:-1].isdigit():
            return f"{int(v.strip()[:-1]) * 24}h"
        return v

    @field_validator("per")
    @classmethod
    def _not_too_short(cls, v: timedelta) -> timedelta:
        if v < MIN_FILL_INTERVAL:
            raise ValueError("must be at least 50ms (Envoy refills a bucket at most every 50ms)")
        return v

    @model_validator(mode="after")
    def _global_parts(self) -> RateLimit:
        if self.global_:
            try:
                check_global_per(self.per)
            except ValueError as e:
                raise ValueError(f"per: {e}") from None
        elif self.key is not None:
            raise ValueError(
                "key splits a global budget: set global: true, or drop key (a local limit "
                "is one bucket per proxy)"
            )
        return self


__all__ = [
    "DirectResponse",
    "Fault",
    "FaultAbort",
    "FaultDelay",
    "HeaderChanges",
    "Headers",
    "Mirror",
    "OneOf",
    "RateLimit",
    "Redirect",
    "RegexRewrite",
    "Rewrite",
    "re2_regex",
]
