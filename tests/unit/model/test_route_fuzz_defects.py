"""Route matches and Mesh defaults Envoy refused after our validation accepted them, found
by the config fuzz (``bench/fuzz_config.py``): each is refused now, naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.errors import ValidationError
from gossamer.model import parse_manifest
from gossamer.types import API_VERSION


def _route(match: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Route",
        "metadata": {"name": "r"},
        "spec": {
            "service": "web",
            "rules": [{"matches": [match], "destinations": [{"service": "web"}]}],
        },
    }


@pytest.mark.parametrize(
    ("match", "field", "says"),
    [
        # Envoy: "StringMatcherValidationError.Prefix: value length must be at least 1"
        ({"headers": [{"name": "x", "prefix": ""}]}, "headers[0].prefix", "empty prefix"),
        # Envoy: "RegexMatcherValidationError.Regex: value length must be at least 1"
        ({"headers": [{"name": "x", "regex": ""}]}, "headers[0].regex", "empty regular"),
        ({"path": {"regex": ""}}, "path.regex", "empty regular"),
        ({"queryParams": [{"name": "q", "regex": ""}]}, "queryParams[0].regex", "empty regular"),
    ],
)
def test_an_empty_match_envoy_would_refuse_is_refused(
    match: dict[str, Any], field: str, says: str
) -> None:
    with pytest.raises(ValidationError) as e:
        parse_manifest(_route(match))
    [err] = e.value.errors
    assert err.path == f"spec.rules[0].matches[0].{field}"
    assert says in err.message


def test_an_empty_exact_header_value_is_still_valid() -> None:
    parse_manifest(_route({"headers": [{"name": "x", "exact": ""}]}))


@pytest.mark.parametrize("timeout", ["0s", 0, 0.0, "0ms"])
def test_a_zero_connect_timeout_is_refused(timeout: object) -> None:
    # Envoy: "ClusterValidationError.ConnectTimeout: value must be greater than 0s"
    mesh = {
        "apiVersion": API_VERSION,
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {"defaults": {"connectTimeout": timeout}},
    }
    with pytest.raises(ValidationError) as e:
        parse_manifest(mesh)
    [err] = e.value.errors
    assert err.path == "spec.defaults.connectTimeout"
    assert "at least 1ms" in err.message
