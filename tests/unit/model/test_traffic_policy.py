"""``TrafficPolicy``: field rules, and the checks across resources (its service, one policy
per (service, subset), sourceIP only at gateways, rateLimit where it works)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gossamer.model import TrafficPolicy, check_references, parse_manifest
from gossamer.types import Manifest

from .builders import errors_of, manifest, messages, route, service, snapshot, workload

WHERE = "TrafficPolicy default/p"


def policy(name: str = "p", **spec: Any) -> Manifest:
    return manifest("TrafficPolicy", name, {"service": "a", **spec})


def test_defaults_and_round_trip() -> None:
    p = parse_manifest(policy(loadBalancer={"algorithm": "maglev", "hash": {"header": "x-u"}}))
    assert isinstance(p, TrafficPolicy)
    assert p.spec.subset == {} and p.spec.retryBudget is None
    assert p.spec.loadBalancer.hash is not None and p.spec.loadBalancer.hash.header == "x-u"
    full = parse_manifest(
        policy(
            subset={"version": "v2"},
            circuitBreaker={"maxConnections": 100, "maxRequests": 1000},
            retryBudget={"percent": 25.5, "minConcurrency": 2},
            outlierDetection={"consecutive5xx": 3, "interval": "1s"},
            rateLimit={"requests": 10, "per": "1m"},
        )
    )
    assert isinstance(full, TrafficPolicy)
    assert full.subset_key == (("version", "v2"),)
    assert full.spec.outlierDetection is not None
    assert full.spec.outlierDetection.baseEjectionTime == timedelta(seconds=30)
    assert parse_manifest(full.to_manifest()) == full


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        (
            {"loadBalancer": {"algorithm": "leastRequest", "hash": {"header": "x"}}},
            "spec.loadBalancer: hash is only used by ringHash and maglev, not leastRequest",
        ),
        (
            {"loadBalancer": {"algorithm": "ringHash"}},
            "spec.loadBalancer: ringHash needs hash",
        ),
        (
            {"loadBalancer": {"algorithm": "ringHash", "hash": {"header": "x", "sourceIP": True}}},
            "spec.loadBalancer.hash: set exactly one of header, cookie, sourceIP",
        ),
        (
            {"circuitBreaker": {"maxRetries": 3}, "retryBudget": {"percent": 20}},
            "spec: set retryBudget or circuitBreaker.maxRetries, not both",
        ),
        ({"loadBalancer": {"algorithm": "fastest"}}, "spec.loadBalancer.algorithm:"),
        ({"circuitBreaker": {"maxRequests": 0}}, "spec.circuitBreaker.maxRequests: must be 1.."),
        ({"retryBudget": {"percent": 120}}, "spec.retryBudget.percent:"),
        ({"outlierDetection": {"interval": "0s"}}, "spec.outlierDetection.interval: must be"),
        (
            {"healthCheck": {"interval": "1s", "timeout": "2s"}},
            "spec.healthCheck: timeout must not be longer than interval",
        ),
        ({"rateLimit": {"requests": 10}}, "spec.rateLimit.per:"),
        ({"circuitBreaker": {"maxRequest": 1}}, "spec.circuitBreaker.maxRequest:"),
    ],
)
def test_invalid_fields_name_file_and_field(spec: dict[str, Any], error: str) -> None:
    errors = errors_of(policy(**spec), "p.yaml")
    assert any(e.startswith(f"p.yaml: {WHERE}: {error}") for e in errors), errors


def check(*ms: Manifest) -> list[str]:
    return messages(check_references(snapshot(*ms)))


def test_unknown_service_is_a_reference_error() -> None:
    assert check(policy()) == [
        f"{WHERE}: spec.service: Service default/a does not exist: apply it first "
        "(or in the same input)"
    ]


def test_two_policies_for_one_service_and_subset_are_refused() -> None:
    v2 = {"subset": {"version": "v2"}}
    ok = [service("a"), policy("p"), policy("q", **v2)]
    assert check(*ok) == []
    errors = check(*ok, policy("r", **v2), policy("s"))
    assert errors == [
        "TrafficPolicy default/r: spec.subset: TrafficPolicy default/q already applies to "
        "default/a subset {version: v2}: one TrafficPolicy per service (and subset); merge "
        "the two",
        "TrafficPolicy default/s: spec.service: TrafficPolicy default/p already applies to "
        "default/a: one TrafficPolicy per service (and subset); merge the two",
    ]


SOURCE_IP = {"loadBalancer": {"algorithm": "ringHash", "hash": {"sourceIP": True}}}


def test_source_ip_hashing_only_for_services_called_through_gateways() -> None:
    assert check(service("a"), policy(**SOURCE_IP)) == []
    direct = workload("w", "b", dependencies=[{"service": "a"}])
    errors = check(service("a"), service("b"), direct, policy(**SOURCE_IP))
    assert len(errors) == 1 and errors[0].startswith(
        f"{WHERE}: spec.loadBalancer.hash.sourceIP: hashing by source IP works only at "
        "gateways, but Workload default/w calls a through its sidecar"
    )
    # through another service's east-west Route counts as calling it too
    via = workload("w", "b", dependencies=[{"service": "c"}])
    to_a = route("c", service="c", rules=[{"destinations": [{"service": "a"}]}])
    errors = check(service("a"), service("b"), service("c"), via, to_a, policy(**SOURCE_IP))
    assert len(errors) == 1 and "Workload default/w calls a" in errors[0]


def test_rate_limit_needs_sidecars_and_health_check_works_with_or_without() -> None:
    plain = workload("a1", "a", sidecar=False, ports=[{"port": 8080}])
    limited = policy(rateLimit={"requests": 5, "per": "1s"})
    (error,) = check(service("a"), plain, limited)
    assert error.startswith(f"{WHERE}: spec.rateLimit: the rate limit is enforced by")
    assert check(service("a"), workload("a1", "a"), limited) == []
    checked = policy(healthCheck={"http": {"path": "/healthz"}})
    assert check(service("a"), plain, checked) == []
    # with sidecars the agents check their apps (the control plane tells them the check)
    assert check(service("a"), workload("a1", "a"), checked) == []
