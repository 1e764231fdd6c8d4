"""The envelope every resource shares (apiVersion, kind, metadata) and field types."""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
)

from gossamer.types import API_VERSION, DEFAULT_NAMESPACE, Manifest, ResourceKey

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9.-]+/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_SECONDS = 10_000 * 3600.0


def _name(value: str) -> str:
    if len(value) > 63 or not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not _LABEL_KEY.fullmatch(key) or len(key) > 253:
            raise ValueError(f"label key {key!r} is not valid: use letters, digits, '-', '_', '.'")
    return value


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds is not None:
        if not seconds < _MAX_SECONDS:
            raise ValueError(f"{value!r} is too long: durations are at most 10000h")
        if round(seconds * 1000, 6) != round(seconds * 1000):
            raise ValueError(f"{value!r} is finer than a millisecond: use whole milliseconds")
        return timedelta(milliseconds=round(seconds * 1000))
    raise ValueError(f"{value!r} is not a duration: write e.g. '250ms', '5s', '2m' or '1h'")


def _format_duration(value: timedelta) -> str:
    ms = round(value.total_seconds() * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _api_version(value: str) -> str:
    if value != API_VERSION:
        raise ValueError(f"must be {API_VERSION!r}")
    return value


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address: write e.g. '127.0.0.2'") from None


def _loopback(value: str) -> str:
    if not ipaddress.ip_address(value).is_loopback:
        raise ValueError(f"{value!r} is not a loopback address: use one in 127.0.0.0/8 or ::1")
    return value


def in_range(lo: int, hi: int) -> AfterValidator:
    """An integer check whose error reads ``must be lo..hi``."""

    def check(value: int) -> int:
        if not lo <= value <= hi:
            raise ValueError(f"must be {lo}..{hi}")
        return value

    return AfterValidator(check)


Name = Annotated[str, AfterValidator(_name)]
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Duration = Annotated[
    timedelta, BeforeValidator(_duration), PlainSerializer(_format_duration, return_type=str)
]
IPAddress = Annotated[str, AfterValidator(_ip)]
LoopbackAddress = Annotated[str, AfterValidator(_ip), AfterValidator(_loopback)]
Port = Annotated[StrictInt, in_range(1, 65535)]


class Strict(BaseModel):
    """Base of every model: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def model_post_init(self, context: Any, /) -> None:
        # Frozen, so nothing adds to the set of fields an instance was given: instances
        # given the same fields share one set (at 10k services the model's 250k sets, of
        # 14 kinds, were 70 MB of its 177 MB). A copy (``model_copy``) gets its own.
        given = self.__pydantic_fields_set__
        object.__setattr__(self, "__pydantic_fields_set__", _shared_fields(frozenset(given)))


@functools.lru_cache(maxsize=1024)
def _shared_fields(fields: frozenset[str]) -> set[str]:
    """One set per combination of fields given (a few dozen exist; bounded all the same:
    manifests from the API choose them)."""
    return set(fields)


class Metadata(Strict):
    name: Name
    namespace: Name = DEFAULT_NAMESPACE
    labels: Labels = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class Resource(Strict):
    """Fields every kind has. Subclasses narrow ``kind`` to a literal and add ``spec``."""

    apiVersion: Annotated[str, AfterValidator(_api_version)]
    kind: str
    metadata: Metadata

    @cached_property
    def key(self) -> ResourceKey:
        return ResourceKey(self.kind, self.metadata.namespace, self.metadata.name)

    @property
    def ref(self) -> tuple[str, str]:
        """(namespace, name): how other resources refer to this one."""
        return (self.metadata.namespace, self.metadata.name)

    def to_manifest(self) -> Manifest:
        """The canonical manifest: what the store keeps (defaults filled in, durations as text)."""
        return self.model_dump(mode="json", exclude_none=True)
