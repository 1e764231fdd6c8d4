"""Global rate limits on Route rules: ``rateLimit: {global: true, key: ...}`` and what the
rate-limit service is told (``global_rules``)."""

from __future__ import annotations

from typing import Any

from gossamer.model import Route, parse_manifest
from gossamer.model.rate_limits import GlobalRule, global_rules

from .builders import errors_of, route

TO_A: dict[str, Any] = {"destinations": [{"service": "a"}]}
R = "Route default/r: spec.rules[0]"


def limited(**limit: Any) -> dict[str, Any]:
    return {"name": "api", **TO_A, "rateLimit": {"requests": 10, "per": "1s", **limit}}


def test_global_rules_are_what_the_service_counts() -> None:
    rules = [
        limited(**{"global": True, "key": {"header": "X-Api-Key"}}),
        {**limited(**{"global": True, "per": "1d"}), "name": "daily"},
        {**limited(), "name": "local"},  # a local limit: not the service's
        {**TO_A, "name": "free"},
    ]
    r = parse_manifest(route("r", rules=rules, namespace="shop"))
    assert isinstance(r, Route)
    assert global_rules([r]) == (
        GlobalRule("shop/r/api", 10, "second", "header"),
        GlobalRule("shop/r/daily", 10, "day", ""),
    )
    assert r.spec.rules[0].rateLimit is not None
    key = r.spec.rules[0].rateLimit.key
    assert key is not None and key.header == "X-Api-Key"


def test_each_key_kind_parses() -> None:
    for kind in ("caller", "clientAddress", "path", "method"):
        r = parse_manifest(route("r", rules=[limited(**{"global": True, "key": {kind: True}})]))
        assert isinstance(r, Route)
        assert global_rules([r])[0].key == kind


def test_refused_global_limits_name_the_field() -> None:
    unnamed = {**TO_A, "rateLimit": {"requests": 1, "per": "1s", "global": True}}
    (error,) = errors_of(route("r", rules=[unnamed]))
    assert error.startswith(f"{R}: ") and "needs a name" in error
    (error,) = errors_of(route("r", rules=[limited(**{"global": True, "per": "2s"})]))
    assert error.startswith(f"{R}.rateLimit: ") and "1s, 1m, 1h or 1d" in error
    (error,) = errors_of(route("r", rules=[limited(key={"header": "x-api-key"})]))
    assert error.startswith(f"{R}.rateLimit: ") and "set global: true" in error
    two = {"path": True, "method": True}
    (error,) = errors_of(route("r", rules=[limited(**{"global": True, "key": two})]))
    assert error.startswith(f"{R}.rateLimit.key: ") and "(got path, method)" in error
    (error,) = errors_of(route("r", rules=[limited(**{"global": True, "key": {}})]))
    assert "set exactly one of header, caller" in error
    (error,) = errors_of(route("r", rules=[limited(**{"global": True, "key": {"path": False}})]))
    assert error.startswith(f"{R}.rateLimit.key.path: ")
