"""``TrafficPolicy.rateLimit.scope``: ``instance`` (the default, each sidecar's figure) or
``service`` (one figure across the healthy instances); anything else, or ``service`` on a
subset's policy, is refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.model import TrafficPolicy, parse_manifest
from gossamer.types import Manifest

from .builders import errors_of, manifest

WHERE = "p.yaml: TrafficPolicy default/p"


def policy(**spec: Any) -> Manifest:
    return manifest("TrafficPolicy", "p", {"service": "a", **spec})


def test_scope_defaults_to_instance_and_round_trips() -> None:
    p = parse_manifest(policy(rateLimit={"requests": 10, "per": "1m"}))
    assert isinstance(p, TrafficPolicy) and p.spec.rateLimit is not None
    assert p.spec.rateLimit.scope == "instance"
    shared = parse_manifest(policy(rateLimit={"requests": 10, "per": "1m", "scope": "service"}))
    assert isinstance(shared, TrafficPolicy) and shared.spec.rateLimit is not None
    assert shared.spec.rateLimit.scope == "service"
    assert parse_manifest(shared.to_manifest()) == shared


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            {"rateLimit": {"requests": 10, "per": "1m", "scope": "cluster"}},
            "spec.rateLimit.scope: input should be 'instance' or 'service'",
        ),
        (
            {
                "subset": {"version": "v2"},
                "rateLimit": {"requests": 10, "per": "1m", "scope": "service"},
            },
            "spec: rateLimit.scope 'service' is one figure for the whole service",
        ),
    ],
)
def test_a_bad_scope_is_refused_naming_the_field(spec: dict[str, Any], error: str) -> None:
    errors = errors_of(policy(**spec), "p.yaml")
    assert any(e.startswith(f"{WHERE}: {error}") for e in errors), errors


def test_a_subset_policy_may_limit_per_instance() -> None:
    p = parse_manifest(
        policy(
            subset={"version": "v2"},
            rateLimit={"requests": 10, "per": "1m", "scope": "instance"},
        )
    )
    assert isinstance(p, TrafficPolicy)
