"""``gossamer describe`` as text: every section in order, each rule with its matches and
effects, the ACK state and NACK of each proxy, the flags explained, unread proxies named."""

from __future__ import annotations

import io

from rich.console import Console
from tests.unit.controlplane.test_describe import EDGE, WEB, _status, model

from gossamer.cli.describe_render import route_view, service_view
from gossamer.controlplane.describe import Observed, describe_route, describe_service
from gossamer.xds.acks import ResourceAck


def text(renderable: object) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(renderable)
    return out.getvalue()


def test_service_view_in_order() -> None:
    observed = {
        WEB: Observed(
            _status(WEB),
            [ResourceAck("routes", "outbound|default/reviews|http", "r2", "r2")],
            "active",
            {"http.outbound|127.0.0.2:9080.fault.aborts_injected": 11},
        ),
        EDGE: Observed(
            _status(EDGE),
            [ResourceAck("routes", "gateway|default/edge", "g2", "g1", nack="bad regex")],
            stats_error="its host gw is offline",
        ),
    }
    shown = text(service_view(describe_service(model(), ("default", "reviews"), observed)))
    sections = [
        "Service default/reviews",
        "Workloads (1)",
        "Routes (rules in evaluation order",
        "Traffic policies",
        "Proxies with this config",
        "Response flags",
    ]
    assert [shown.index(s) for s in sections] == sorted(shown.index(s) for s in sections)
    assert "1. broken when path prefix /broken and method GET" in shown
    assert "-> fault: abort with 503 for 100% of requests" in shown
    assert "then: a request no rule matches goes to the service itself" in shown
    assert "default/reviews-cb (whole service)" in shown
    assert "default/reviews-v1 (subset {version=v1})" in shown
    assert "sidecar default/web-1" in shown and "acked" in shown
    assert "default/edge rejected: bad regex" in shown
    assert "FI    11" in shown and "aborted by fault injection" in shown
    assert "not read from gateway~default~edge: its host gw is offline" in shown


def test_route_view() -> None:
    d = describe_route(model(), ("default", "frontend"), {})
    shown = text(route_view(d))
    assert "for calls to default/frontend" in shown
    assert "-> split: reviews{version=v1} 25%, frontend 75%" in shown
    assert "sidecar default/web-2" in shown and "never connected" in shown
