"""``Route``: matches, destinations, retries, timeouts and the east-west/ingress target."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gossamer.model import Route, parse_manifest

from .builders import errors_of, route


def rt(**spec: Any) -> Route:
    r = parse_manifest(route("r", **spec))
    assert isinstance(r, Route)
    return r


def rule_errors(rule: dict[str, Any]) -> list[str]:
    return errors_of(route("r", rules=[rule]))


def test_defaults() -> None:
    r = rt()
    assert r.spec.service == "a"
    assert r.spec.gateways == []
    assert r.spec.hosts == ["*"]
    (rule,) = r.spec.rules
    (match,) = rule.matches
    assert match.path.prefix == "/"
    assert match.path.exact is None
    assert match.path.regex is None
    assert match.headers == []
    assert match.method is None
    assert rule.timeout is None
    assert rule.retries is None
    (dest,) = rule.destinations
    assert dest.namespace is None
    assert dest.port is None
    assert dest.subset == {}
    assert dest.weight == 100


def test_the_error_format_names_file_resource_and_field() -> None:
    rules = [
        {"destinations": [{"service": "cart"}]},
        {"destinations": [{"service": "cart", "weight": 101}]},
    ]
    m = route("cart", service="cart", rules=rules)
    assert errors_of(m, "file.yaml") == [
        "file.yaml: Route default/cart: spec.rules[1].destinations[0].weight: must be 0..100"
    ]


# -- target ------------------------------------------------------------------------------


def test_ingress_route() -> None:
    r = rt(gateways=["edge"], hosts=["shop.example.com"])
    assert r.spec.service is None
    assert r.spec.gateways == ["edge"]
    assert r.spec.hosts == ["shop.example.com"]


@pytest.mark.parametrize(
    "target", [{"service": None, "gateways": []}, {"service": "a", "gateways": ["edge"]}]
)
def test_exactly_one_target(target: dict[str, Any]) -> None:
    assert errors_of(route("r", **target)) == [
        "Route default/r: spec: set either service (east-west) or gateways (ingress), not both"
    ]


def test_rules_are_required_and_not_empty() -> None:
    (error,) = errors_of(route("r", rules=[]))
    assert error.startswith("Route default/r: spec.rules: list should have at least 1 item")


def test_hosts_may_not_be_empty() -> None:
    (error,) = errors_of(route("r", gateways=["edge"], hosts=[]))
    assert error.startswith("Route default/r: spec.hosts: list should have at least 1 item")


def test_gateway_names_follow_the_name_rule() -> None:
    (error,) = errors_of(route("r", gateways=["ok", "Edge"]))
    assert error.startswith("Route default/r: spec.gateways[1]: 'Edge' is not a valid name")


# -- path matches ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", [{"exact": "/a"}, {"prefix": "/api/"}, {"regex": "^/items/[0-9]+$"}]
)
def test_path_kinds(path: dict[str, str]) -> None:
    r = rt(rules=[{"matches": [{"path": path}], "destinations": [{"service": "a"}]}])
    got = r.spec.rules[0].matches[0].path
    assert {k: v for k, v in got.model_dump().items() if v is not None} == path


@pytest.mark.parametrize(
    "path", [{}, {"exact": "/a", "prefix": "/"}, {"prefix": "/", "regex": "x"}]
)
def test_path_needs_exactly_one_kind(path: dict[str, str]) -> None:
    assert rule_errors({"matches": [{"path": path}], "destinations": [{"service": "a"}]}) == [
        "Route default/r: spec.rules[0].matches[0].path: set exactly one of exact, prefix, regex"
    ]


@pytest.mark.parametrize("kind", ["exact", "prefix"])
def test_exact_and_prefix_must_be_absolute(kind: str) -> None:
    errors = rule_errors({"matches": [{"path": {kind: "api"}}], "destinations": [{"service": "a"}]})
    assert errors == [
        f"Route default/r: spec.rules[0].matches[0].path.{kind}: 'api' must start with '/'"
    ]


def test_path_regex_must_compile() -> None:
    (error,) = rule_errors(
        {"matches": [{"path": {"regex": "/items/("}}], "destinations": [{"service": "a"}]}
    )
    assert error.startswith(
        "Route default/r: spec.rules[0].matches[0].path.regex: '/items/(' is not a valid "
        "regular expression: "
    )


@pytest.mark.parametrize("regex", ["^/(?!admin)", r"^/(a)\1$"])
def test_path_regex_must_be_re2(regex: str) -> None:
    rule_errors({"matches": [{"path": {"regex": regex}}], "destinations": [{"service": "a"}]})


# -- header and method matches -----------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        {"name": "x-user", "exact": "alice"},
        {"name": "x-user", "prefix": "al"},
        {"name": "x-user", "regex": "^a.*"},
        {"name": "x-user", "present": True},
        {"name": "x-user", "present": False},
        {"name": ":authority", "exact": "shop", "invert": True},
        {"name": "X_Odd!#$%&'*+.^`|~-", "exact": "1"},
    ],
)
def test_header_matches(header: dict[str, Any]) -> None:
    r = rt(rules=[{"matches": [{"headers": [header]}], "destinations": [{"service": "a"}]}])
    got = r.spec.rules[0].matches[0].headers[0]
    assert got.name == header["name"]
    assert got.invert is header.get("invert", False)


@pytest.mark.parametrize(
    "header",
    [
        {"name": "x"},
        {"name": "x", "exact": "a", "present": True},
        {"name": "x", "prefix": "a", "regex": "b"},
    ],
)
def test_header_match_needs_exactly_one_kind(header: dict[str, Any]) -> None:
    assert rule_errors(
        {"matches": [{"headers": [header]}], "destinations": [{"service": "a"}]}
    ) == [
        "Route default/r: spec.rules[0].matches[0].headers[0]: "
        "set exactly one of exact, prefix, regex, present"
    ]


@pytest.mark.parametrize("name", ["", "x y", "a:b", "::a", "é"])
def test_header_names_must_be_tokens(name: str) -> None:
    errors = rule_errors(
        {
            "matches": [{"headers": [{"name": name, "present": True}]}],
            "destinations": [{"service": "a"}],
        }
    )
    assert len(errors) == 1
    assert errors[0].startswith("Route default/r: spec.rules[0].matches[0].headers[0].name: ")


def test_header_regex_must_compile() -> None:
    rule_errors(
        {
            "matches": [{"headers": [{"name": "x", "regex": "["}]}],
            "destinations": [{"service": "a"}],
        }
    )


@pytest.mark.parametrize("method", ["GET", "POST", "PURGE"])
def test_methods(method: str) -> None:
    r = rt(rules=[{"matches": [{"method": method}], "destinations": [{"service": "a"}]}])
    assert r.spec.rules[0].matches[0].method == method


@pytest.mark.parametrize("method", ["get", "", "GET POST"])
def test_bad_methods(method: str) -> None:
    assert rule_errors({"matches": [{"method": method}], "destinations": [{"service": "a"}]}) == [
        "Route default/r: spec.rules[0].matches[0].method: string should match pattern '^[A-Z]+$'"
    ]


def test_matches_may_not_be_empty() -> None:
    (error,) = rule_errors({"matches": [], "destinations": [{"service": "a"}]})
    assert error.startswith("Route default/r: spec.rules[0].matches: list should have at least 1")


# -- destinations ------------------------------------------------------------------------


def test_destination_fields() -> None:
    r = rt(
        rules=[
            {
                "destinations": [
                    {
                        "service": "b",
                        "namespace": "other",
                        "port": "grpc",
                        "subset": {"version": "v2"},
                        "weight": 20,
                    },
                    {"service": "b", "weight": 0},
                ]
            }
        ]
    )
    first, second = r.spec.rules[0].destinations
    assert (first.service, first.namespace, first.port, first.subset, first.weight) == (
        "b",
        "other",
        "grpc",
        {"version": "v2"},
        20,
    )
    assert second.weight == 0


def test_destinations_may_not_be_empty() -> None:
    (error,) = rule_errors({"destinations": []})
    assert error.startswith(
        "Route default/r: spec.rules[0].destinations: list should have at least 1"
    )


@pytest.mark.parametrize("weight", [-1, 101])
def test_weight_range(weight: int) -> None:
    assert rule_errors({"destinations": [{"service": "a", "weight": weight}]}) == [
        "Route default/r: spec.rules[0].destinations[0].weight: must be 0..100"
    ]


def test_weights_may_not_all_be_zero() -> None:
    dests = [{"service": "a", "weight": 0}, {"service": "b", "weight": 0}]
    assert rule_errors({"destinations": dests}) == [
        "Route default/r: spec.rules[0].destinations: the weights add up to 0: "
        "give at least one destination weight > 0"
    ]


def test_subset_keys_are_label_keys() -> None:
    (error,) = rule_errors({"destinations": [{"service": "a", "subset": {"bad key": "x"}}]})
    assert error.startswith("Route default/r: spec.rules[0].destinations[0].subset: label key")


# -- timeouts and retries ----------------------------------------------------------------


def test_timeout_and_retry_defaults() -> None:
    r = rt(rules=[{"timeout": "1500ms", "retries": {}, "destinations": [{"service": "a"}]}])
    rule = r.spec.rules[0]
    assert rule.timeout == timedelta(milliseconds=1500)
    assert rule.retries is not None
    assert rule.retries.attempts == 2
    assert rule.retries.perTryTimeout is None
    assert rule.retries.retryOn == ["connect-failure", "refused-stream"]


def test_retry_fields() -> None:
    retries = {"attempts": 0, "perTryTimeout": "200ms", "retryOn": ["5xx", "unavailable"]}
    r = rt(rules=[{"retries": retries, "destinations": [{"service": "a"}]}])
    got = r.spec.rules[0].retries
    assert got is not None
    assert (got.attempts, got.perTryTimeout, got.retryOn) == (
        0,
        timedelta(milliseconds=200),
        ["5xx", "unavailable"],
    )
    assert r.to_manifest()["spec"]["rules"][0]["retries"] == {**retries, "statusCodes": []}


@pytest.mark.parametrize("attempts", [-1, 11])
def test_retry_attempts_range(attempts: int) -> None:
    assert rule_errors({"retries": {"attempts": attempts}, "destinations": [{"service": "a"}]}) == [
        "Route default/r: spec.rules[0].retries.attempts: must be 0..10"
    ]


def test_unknown_retry_condition() -> None:
    (error,) = rule_errors(
        {"retries": {"retryOn": ["5xx", "teapot"]}, "destinations": [{"service": "a"}]}
    )
    assert error.startswith(
        "Route default/r: spec.rules[0].retries.retryOn[1]: 'teapot' is not a retry "
        "condition; valid are HTTP: 5xx,"
    )


def test_bad_timeout() -> None:
    (error,) = rule_errors({"timeout": "soon", "destinations": [{"service": "a"}]})
    assert error.startswith("Route default/r: spec.rules[0].timeout: 'soon' is not a duration")
