"""Requests to ExternalServices, as the telemetry service counts them (access-log entries
and stats exports alike): a sidecar's hop through an egress gateway ends at the gateway
(its listener's ``gossamer.destination_kind: gateway`` and ``gossamer.destination``, not the
cluster named after the external service), the gateway's own hop goes to the external
node (its cluster ``egress|...`` names no mesh service: the listener's literal does), and
a stats series written in the ``joined`` layout (every field in one tag) reads as the same
request as one written tag by tag."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from test_telemetry_stats_records import T0, export

from gossamer.node import fill_node
from gossamer.telemetry.aggregate import Aggregator
from gossamer.telemetry.entries import Recorder, Reporter
from gossamer.telemetry.stats_records import RequestStats
from gossamer.testing.telemetry import http_entry
from gossamer.translate import telemetry, telemetry_stats
from gossamer.translate.names import outbound_cluster
from gossamer.types import ProxyIdentity

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")
EGRESS = ProxyIdentity("gateway", "default", "egress")
WEATHER = ("default", "weather")
VIA_TAGS = telemetry.outbound_tags(WEATHER, external=True, via=("default", "egress"))
OUT_TAGS = telemetry.outbound_tags(WEATHER, external=True)
NAMES = {"sidecar~default~web-1": "default/web", "gateway~default~egress": "default/egress"}


def reporter(who: ProxyIdentity, log_name: str) -> Reporter:
    node = base_pb2.Node()
    fill_node(node, who)
    return Reporter.of(node, log_name)


def test_entries_a_sidecars_hop_ends_at_the_egress_gateway_which_calls_the_external() -> None:
    recorder = Recorder()
    hop = recorder.record(
        reporter(WEB_1, "outbound"),
        http_entry(cluster=outbound_cluster(WEATHER, "http"), tags=VIA_TAGS),
    )
    assert hop is not None
    assert (hop.source, hop.destination, hop.destination_kind) == (
        "default/web", "default/egress", "gateway",
    )  # fmt: skip
    out = recorder.record(
        reporter(EGRESS, "gateway"),
        http_entry(cluster="egress|default/weather|http", tags=OUT_TAGS),
    )
    assert out is not None
    assert (out.source, out.source_kind, out.destination, out.destination_kind) == (
        "default/egress", "gateway", "default/weather", "external",
    )  # fmt: skip
    # the gateway refusing a caller (no cluster): still the external service's request
    refused = recorder.record(
        reporter(EGRESS, "gateway"), http_entry(cluster="", status=403, tags=OUT_TAGS)
    )
    assert refused is not None and refused.destination == "default/weather"


def _stats_tags(log_name: str, tags: dict[str, str], **values: str) -> dict[str, str]:
    literals = {"dst": tags[telemetry.DESTINATION_TAG], "dst_kind": tags.get(
        telemetry.DESTINATION_KIND_TAG, "")}  # fmt: skip
    return {"view": log_name, **{k: v for k, v in literals.items() if v}, **values}


def test_stats_the_same_hops_tag_by_tag_and_joined() -> None:
    via = _stats_tags(
        "outbound", VIA_TAGS, cluster="outbound|default/weather|http", code="200",
        host="127.0.0.72:8000", method="GET", route="", peer="",
    )  # fmt: skip
    out = _stats_tags(
        "gateway", OUT_TAGS, cluster="egress|default/weather|http", code="404",
        host="127.0.0.73:80", method="GET", route="", peer="",
    )  # fmt: skip
    fields = telemetry_stats.JOINED_FIELDS
    for joined in (False, True):
        agg = Aggregator()
        stats = RequestStats(agg, started_s=T0 - 100)
        for node, tags in (("sidecar~default~web-1", via), ("gateway~default~egress", out)):
            if joined:
                value = telemetry_stats.SEPARATOR.join(tags.get(f, "-") for f in fields)
                tags = {telemetry_stats.JOINED_TAG: value}
            sent = export(T0, 10, [(tags, [2, 1, 0, 0])], node=node)
            sent.resource.attributes[1].value.string_value = NAMES[node]  # service.name
            assert stats.export(sent) == 3
        got = {
            (k.source, k.source_kind, k.destination, k.destination_kind, k.instance): (
                b.requests, b.e4xx,
            )
            for m in agg.minutes.values()
            for k, b in m.items()
        }  # fmt: skip
        assert got == {
            ("default/web", "service", "default/egress", "gateway", "127.0.0.72:8000"): (3, 0),
            ("default/egress", "gateway", "default/weather", "external", "127.0.0.73:80"): (3, 3),
        }, joined


def test_a_joined_value_splits_with_the_peer_last_whatever_it_holds() -> None:
    value = telemetry_stats.SEPARATOR.join(
        ["inbound", "-", "-", "200", "r", "-", "-", "GET", "spiffe://td/ns/a/sa/b, odd one"]
    )
    fields = telemetry_stats.split_joined(value)
    assert fields["peer"] == "spiffe://td/ns/a/sa/b, odd one"
    assert "dst" not in fields and fields["method"] == "GET" and fields["code"] == "200"
    assert telemetry_stats.split_joined("too few fields") == {}
