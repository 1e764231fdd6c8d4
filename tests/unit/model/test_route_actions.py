"""``Route`` rule parts: query matches, rewrite, headers, redirect, directResponse, mirror,
fault and rateLimit; everything Envoy would refuse is refused at apply time, naming the
field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gossamer.model import Route, check_references, parse_manifest

from .builders import errors_of, route

TO_A: dict[str, Any] = {"destinations": [{"service": "a"}]}
R = "Route default/r: spec.rules[0]"


def rule_of(rule: dict[str, Any]) -> Any:
    r = parse_manifest(route("r", rules=[rule]))
    assert isinstance(r, Route)
    return r.spec.rules[0]


def rule_errors(rule: dict[str, Any]) -> list[str]:
    return errors_of(route("r", rules=[rule]))


def test_every_part_parses() -> None:
    rule = rule_of(
        {
            "name": "api",
            "matches": [
                {"path": {"prefix": "/api/v1"}, "queryParams": [{"name": "debug", "exact": "1"}]}
            ],
            "rewrite": {"prefix": "/internal", "host": "api.internal"},
            "headers": {
                "request": {"set": {"X-A": "b"}, "add": {"x-c": "d"}, "remove": ["x-secret"]},
                "response": {"set": {"x-served-by": "mesh"}},
            },
            **TO_A,
            "mirror": {"service": "shadow", "percent": 12.5},
            "fault": {
                "delay": {"duration": "300ms", "percent": 10},
                "abort": {"status": 503, "percent": 5},
            },
            "rateLimit": {"requests": 100, "per": "1m"},
        }
    )
    assert rule.matches[0].queryParams[0].exact == "1"
    assert rule.headers.request.set == {"x-a": "b"}  # names are stored in lowercase
    assert rule.mirror.percent == 12.5
    assert rule.fault.delay.duration == timedelta(milliseconds=300)
    assert (rule.rateLimit.requests, rule.rateLimit.per) == (100, timedelta(minutes=1))
    assert [t.service for t in rule.targets()] == ["a", "shadow"]


@pytest.mark.parametrize(
    "actions",
    [
        {},
        {**TO_A, "directResponse": {"status": 200}},
        {"redirect": {"prefix": "/x"}, "directResponse": {"status": 200}},
    ],
)
def test_exactly_one_action(actions: dict[str, Any]) -> None:
    (error,) = rule_errors(actions)
    assert error.startswith(f"{R}: set exactly one of destinations, redirect, directResponse")


@pytest.mark.parametrize("part", ["rewrite", "mirror", "rateLimit", "timeout", "retries"])
def test_forwarding_parts_need_destinations(part: str) -> None:
    value = {
        "rewrite": {"host": "x"},
        "mirror": {"service": "b"},
        "rateLimit": {"requests": 1, "per": "1s"},
        "timeout": "1s",
        "retries": {},
    }[part]
    (error,) = rule_errors({"directResponse": {"status": 200}, part: value})
    assert error == f"{R}: {part} need destinations (this rule answers itself)"


def test_prefix_rewrite_needs_prefix_or_exact_matches() -> None:
    regex_match = {"matches": [{"path": {"regex": "/a/[0-9]+"}}]}
    (error,) = rule_errors({**regex_match, **TO_A, "rewrite": {"prefix": "/b"}})
    assert error == (
        f"{R}: rewrite.prefix replaces a matched prefix, but a match here is a path regex: "
        "use rewrite.regex, or match with path.prefix/path.exact"
    )
    (error,) = rule_errors({**regex_match, "redirect": {"prefix": "/b"}})
    assert "redirect.prefix replaces a matched prefix" in error and "use redirect.path" in error
    rule = rule_of(
        {
            **regex_match,
            **TO_A,
            "rewrite": {"regex": {"pattern": "^/a/(.*)$", "substitution": "/b/\\1"}},
        }
    )
    assert rule.rewrite.regex.substitution == "/b/\\1"


@pytest.mark.parametrize(
    ("rewrite", "message"),
    [
        ({}, "set at least one of prefix, regex, host"),
        ({"prefix": "/a", "regex": {"pattern": "a", "substitution": "b"}}, "set prefix or regex"),
        ({"prefix": "a"}, "'a' must start with '/'"),
        ({"regex": {"pattern": "(?=a)", "substitution": "b"}}, "is not a valid regular expression"),
        ({"host": "a b"}, "is not a host name"),
    ],
)
def test_bad_rewrites(rewrite: dict[str, Any], message: str) -> None:
    (error,) = rule_errors({**TO_A, "rewrite": rewrite})
    assert error.startswith(f"{R}.rewrite") and message in error


@pytest.mark.parametrize("name", [":path", "Host", ":authority"])
def test_pseudo_headers_and_host_cannot_be_changed(name: str) -> None:
    for changes in ({"set": {name: "x"}}, {"remove": [name]}):
        (error,) = rule_errors({**TO_A, "headers": {"request": changes}})
        assert error.startswith(f"{R}.headers.request.")
        assert "cannot be changed by a rule" in error or "should match pattern" in error


def test_header_values_are_one_line_and_set_or_add() -> None:
    (error,) = rule_errors({**TO_A, "headers": {"response": {"set": {"x": "a\r\nb: c"}}}})
    assert error.startswith(f"{R}.headers.response.set.x: ") and "CR, LF or NUL" in error
    (error,) = rule_errors({**TO_A, "headers": {"request": {"set": {"x": "1"}, "add": {"x": "2"}}}})
    assert "x: in both set and add" in error


@pytest.mark.parametrize(
    ("redirect", "message"),
    [
        ({}, "a redirect to the same URL would loop"),
        ({"status": 301}, "a redirect to the same URL would loop"),
        ({"prefix": "/a", "path": "/b"}, "set prefix or path, not both"),
        ({"path": "/a", "status": 200}, "status: input should be 301, 302, 303, 307 or 308"),
        ({"scheme": "ftp"}, "scheme: input should be 'http' or 'https'"),
        ({"port": 0}, "port: must be 1..65535"),
    ],
)
def test_bad_redirects(redirect: dict[str, Any], message: str) -> None:
    (error,) = rule_errors({"redirect": redirect})
    assert error.startswith(f"{R}.redirect") and message in error, error


def test_direct_response_bounds() -> None:
    (error,) = rule_errors({"directResponse": {"status": 600}})
    assert error == f"{R}.directResponse.status: must be 200..599"
    (error,) = rule_errors({"directResponse": {"status": 200, "body": "é" * 2049}})
    assert error == f"{R}.directResponse.body: is 4098 bytes: Envoy serves at most 4096"


@pytest.mark.parametrize(
    ("fault", "field", "message"),
    [
        ({}, "fault", "set delay, abort or both"),
        ({"abort": {"status": 100, "percent": 5}}, "fault.abort.status", "must be 200..599"),
        ({"abort": {"status": 503, "percent": 101}}, "fault.abort.percent", "less than or equal"),
        ({"delay": {"duration": "0s", "percent": 5}}, "fault.delay.duration", "more than 0"),
        ({"delay": {"duration": "1s"}}, "fault.delay.percent", "required field is missing"),
    ],
)
def test_bad_faults(fault: dict[str, Any], field: str, message: str) -> None:
    (error,) = rule_errors({**TO_A, "fault": fault})
    assert error.startswith(f"{R}.{field}: ") and message in error, error


def test_rate_limits() -> None:
    (error,) = rule_errors({**TO_A, "rateLimit": {"requests": 10, "per": "10ms"}})
    assert (
        error
        == f"{R}.rateLimit.per: must be at least 50ms (Envoy refills a bucket at most every 50ms)"
    )
    (error,) = rule_errors({**TO_A, "rateLimit": {"requests": 0, "per": "1s"}})
    assert error.startswith(f"{R}.rateLimit.requests: ")
    # global limits: tests/unit/model/test_rate_limits.py
    (error,) = rule_errors({**TO_A, "rateLimit": {"requests": 10, "per": "1s", "global": True}})
    assert "a rule with a global rateLimit needs a name" in error


def test_query_param_matches() -> None:
    (error,) = rule_errors({**TO_A, "matches": [{"queryParams": [{"name": "a"}]}]})
    assert "set exactly one of exact, regex, present" in error
    (error,) = rule_errors(
        {**TO_A, "matches": [{"queryParams": [{"name": "a", "present": False}]}]}
    )
    assert error.startswith("Route default/r: spec.rules[0].matches[0].queryParams[0].present")
    (error,) = rule_errors({**TO_A, "matches": [{"queryParams": [{"name": "a", "regex": "(a"}]}]})
    assert "is not a valid regular expression" in error


def test_rule_names_are_unique_in_a_route() -> None:
    rules = [{"name": "x", **TO_A}, {"name": "x", **TO_A}]
    (error,) = errors_of(route("r", rules=rules))
    assert error == "Route default/r: spec.rules: rule names must be unique in a Route: x repeat"


def test_a_mirror_must_be_a_known_http_service() -> None:
    from gossamer.model import ModelSnapshot, parse_yaml

    snap = ModelSnapshot().with_changes(
        parse_yaml(
            """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: a}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: db}
spec: {ports: [{name: tcp, port: 5432, protocol: tcp}]}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: r}
spec:
  service: a
  rules:
  - {destinations: [{service: a}], mirror: {service: nope}}
  - {destinations: [{service: a}], mirror: {service: db}}
""",
            "m.yaml",
        )
    )
    errors = [(e.path, e.message) for e in check_references(snap)]
    assert errors[0][0] == "spec.rules[0].mirror.service"
    assert errors[0][1].startswith("Service default/nope does not exist")
    assert (
        "spec.rules[1].mirror.port",
        "a Route can only send to http, http2 or grpc ports",
    ) in errors
