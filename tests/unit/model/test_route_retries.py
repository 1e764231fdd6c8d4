"""``Retries.retryOn`` and ``statusCodes`` at apply time: every Envoy ``retry_on`` condition
Gossamer offers (HTTP and gRPC status) is accepted; a value written as gRPC or Envoy write
it elsewhere (``DEADLINE_EXCEEDED``, ``14``) is refused with the spelling to use; status
codes and ``retriable-status-codes`` come together; an empty list retries nothing."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.model import Route, parse_manifest
from gossamer.model.route import GRPC_RETRY_ON, HTTP_RETRY_ON, Retries

from .builders import errors_of, route


def _route(retries: dict[str, Any]) -> dict[str, Any]:
    return route("r", rules=[{"destinations": [{"service": "a"}], "retries": retries}])


def errors(retries: dict[str, Any]) -> list[str]:
    return errors_of(_route(retries))


def parsed(retries: dict[str, Any]) -> Retries:
    r = parse_manifest(_route(retries))
    assert isinstance(r, Route) and r.spec.rules[0].retries is not None
    return r.spec.rules[0].retries


def test_every_condition_is_accepted_and_grpc_codes_are_named_as_envoy_does() -> None:
    assert GRPC_RETRY_ON == (
        "cancelled",
        "deadline-exceeded",
        "internal",
        "resource-exhausted",
        "unavailable",
    )
    every = [*HTTP_RETRY_ON, *GRPC_RETRY_ON]
    assert parsed({"retryOn": every, "statusCodes": [503]}).retryOn == every


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("DEADLINE_EXCEEDED", "write it 'deadline-exceeded'"),
        ("Unavailable", "write it 'unavailable'"),
        (14, "gRPC status 14 is 'unavailable'"),
        ("8", "gRPC status 8 is 'resource-exhausted'"),
        ("not-found", "gRPC status NOT_FOUND is not retried by Envoy"),
        ("503", "put HTTP statuses in statusCodes with 'retriable-status-codes'"),
    ],
)
def test_a_condition_written_another_way_is_refused_with_the_spelling_to_use(
    value: object, hint: str
) -> None:
    [error] = errors({"retryOn": ["5xx", value]})
    assert error.startswith(
        f"Route default/r: spec.rules[0].retries.retryOn[1]: {value!r} is not a retry condition"
    )
    assert hint in error
    # and every valid value is named, HTTP and gRPC apart
    assert "HTTP: 5xx, gateway-error" in error and "gRPC status: cancelled," in error


def test_status_codes_need_retriable_status_codes_and_the_other_way_round() -> None:
    [error] = errors({"retryOn": ["5xx"], "statusCodes": [409]})
    assert "statusCodes [409] are retried only with 'retriable-status-codes' in retryOn" in error
    [error] = errors({"retryOn": ["retriable-status-codes"]})
    assert "'retriable-status-codes' needs statusCodes" in error


def test_an_empty_retry_on_is_refused_unless_retries_are_off() -> None:
    [error] = errors({"retryOn": []})
    assert "retryOn is empty: nothing would be retried" in error
    assert "attempts: 0" in error
    assert parsed({"attempts": 0, "retryOn": []}).retryOn == []
