"""Field types of the mTLS settings shared by ``Mesh`` and ``Service``."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator


def _yaml_off(value: Any) -> Any:
    """YAML 1.1 reads an unquoted ``off`` as false: ``mode: off`` means ``"off"``."""
    return "off" if value is False else value


#: ``strict`` | ``permissive`` | ``off`` (docs/security.md, "mTLS modes")
MtlsMode = Annotated[Literal["strict", "permissive", "off"], BeforeValidator(_yaml_off)]


def duration_between(lo: timedelta, hi: timedelta, text: str) -> AfterValidator:
    """A duration check whose error reads ``must be <text>`` (e.g. ``1m..24h``)."""

    def check(value: timedelta) -> timedelta:
        if not lo <= value <= hi:
            raise ValueError(f"must be {text}")
        return value

    return AfterValidator(check)
