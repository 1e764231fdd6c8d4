"""Protocol parts of a route: a gRPC call's deadline is honoured and capped by the route's
timeout (``max_stream_duration``, Envoy's newer timeouts); every other route keeps
``timeout``, which Envoy ignores on a route that has ``max_stream_duration`` (a rule's
timeout then cut off nothing: tests/integration/traffic/test_egress_traffic.py); a sidecar's
inbound route leaves deadlines to the caller's. What clients see is in
tests/integration/traffic/test_grpc_mesh.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from envoy.config.route.v3 import route_components_pb2 as rc_pb2

from gossamer.model import ModelSnapshot
from gossamer.model.route import Destination, Mirror, Rule
from gossamer.translate.routes import default_route, inbound_routes, routes_for_rules

MESH = ModelSnapshot().mesh


def _one(rule: Rule, grpc: bool) -> rc_pb2.RouteAction:
    def cluster_of(d: Destination | Mirror, namespace: str) -> tuple[str, bool]:
        return "c", grpc

    [route] = routes_for_rules([(rule, "default", "r")], cluster_of, MESH)
    return route.route


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (None, timedelta(0)),  # gRPC: no timeout but the client's deadline
        ("2s", timedelta(seconds=2)),  # a rule's timeout caps any deadline
    ],
)
def test_a_grpc_route_ends_calls_at_the_deadline_capped_by_its_timeout(
    timeout: str | None, expected: timedelta
) -> None:
    rule = Rule.model_validate({"destinations": [{"service": "s"}], "timeout": timeout})
    action = _one(rule, grpc=True)
    limits = action.max_stream_duration
    assert limits.grpc_timeout_header_max.ToTimedelta() == expected
    assert limits.max_stream_duration.ToTimedelta() == expected
    assert action.timeout.ToTimedelta() == expected


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(None, MESH.spec.defaults.requestTimeout), ("2s", timedelta(seconds=2))],
)
def test_other_routes_keep_their_timeout_and_no_stream_duration(
    timeout: str | None, expected: timedelta
) -> None:
    rule = Rule.model_validate({"destinations": [{"service": "s"}], "timeout": timeout})
    action = _one(rule, grpc=False)
    assert action.timeout.ToTimedelta() == expected
    assert not action.HasField("max_stream_duration")


def test_a_callers_default_route_honours_deadlines_and_an_inbound_route_does_not() -> None:
    grpc = default_route("c", None, grpc=True).route
    assert grpc.max_stream_duration.grpc_timeout_header_max.ToTimedelta() == timedelta(0)
    http = default_route("c", timedelta(seconds=30), grpc=False).route
    assert http.timeout.ToTimedelta() == timedelta(seconds=30)
    assert not http.HasField("max_stream_duration")
    [vh] = inbound_routes("inbound|http", "c").virtual_hosts
    assert not vh.routes[0].route.HasField("max_stream_duration")
