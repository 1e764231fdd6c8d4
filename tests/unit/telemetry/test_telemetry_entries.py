"""An access-log entry and its stream's node make one record: who called whom is decided by
the reporting proxy's node and by what Envoy verified or picked, never by the request."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2

from gossamer.errors import GossamerError
from gossamer.node import fill_node
from gossamer.telemetry.entries import (
    DESTINATION_KIND_TAG,
    DESTINATION_TAG,
    UPSTREAM_PEER_TAG,
    Recorder,
    Reporter,
    outbound_destination,
)
from gossamer.testing.telemetry import http_entry
from gossamer.translate.names import outbound_cluster
from gossamer.types import ProxyIdentity

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web")
API_1 = ProxyIdentity("sidecar", "shop", "api-7", service="api")
EDGE = ProxyIdentity("gateway", "default", "edge")
API_CLUSTER = outbound_cluster(("shop", "api"), "http")


def reporter(who: ProxyIdentity, log_name: str) -> Reporter:
    node = base_pb2.Node()
    fill_node(node, who)
    return Reporter.of(node, log_name)


def test_the_client_view_names_the_caller_by_its_node_and_the_callee_by_its_cluster() -> None:
    rec = Recorder().record(
        reporter(WEB_1, "outbound"),
        http_entry(
            cluster=API_CLUSTER,
            upstream=("127.0.0.5", 9080),
            status=201,
            latency_ms=7.25,
            route_name="orders",
            method=base_pb2.POST,
            start_s=1_800_000_061,
            attempts=3,
            request_bytes=(100, 20),
            response_bytes=(50, 5),
            tags={UPSTREAM_PEER_TAG: "spiffe://mesh/ns/shop/sa/api"},
        ),
    )
    assert rec is not None
    assert rec._asdict() == {
        "view": "client",
        "source": "default/web",
        "source_kind": "service",
        "destination": "shop/api",
        "destination_kind": "service",
        "instance": "127.0.0.5:9080",
        "endpoint": "POST orders",
        "minute": 1_800_000_061 // 60,
        "status": 201,
        "latency_ms": 7.25,
        "bytes_received": 120,
        "bytes_sent": 55,
        "mtls": True,
        "retries": 2,
        "flags": "-",
        "workload": "default/web-1",
        "peer_principal": "spiffe://mesh/ns/shop/sa/api",
        "local_principal": "",
    }


def test_the_server_view_names_the_caller_by_its_verified_certificate() -> None:
    rec = Recorder().record(
        reporter(API_1, "inbound"),
        http_entry(cluster="inbound|http", peer_uri="spiffe://mesh/ns/default/sa/web"),
    )
    assert rec is not None
    assert (rec.view, rec.source, rec.destination, rec.instance, rec.mtls, rec.retries) == (
        "server",
        "default/web",
        "shop/api",
        "shop/api-7",
        True,
        0,
    )


def test_an_inbound_caller_without_a_certificate_is_unauthenticated() -> None:
    rec = Recorder().record(reporter(API_1, "inbound"), http_entry(cluster="inbound|http"))
    assert rec is not None
    assert (rec.source, rec.source_kind, rec.mtls) == ("unauthenticated", "unknown", False)


@pytest.mark.parametrize(
    "headers",
    [
        {"x-forwarded-client-cert": "By=spiffe://mesh/ns/default/sa/admin;URI=spiffe://x"},
        {"x-gossamer-source": "default/admin", "x-forwarded-for": "10.0.0.1"},
        {"x-envoy-peer-metadata-id": "sidecar~default~admin-1"},
    ],
)
def test_no_request_header_changes_source_or_destination(headers: dict[str, str]) -> None:
    recorder = Recorder()
    for who, log_name, cluster in ((WEB_1, "outbound", API_CLUSTER), (API_1, "inbound", "")):
        plain = recorder.record(reporter(who, log_name), http_entry(cluster=cluster))
        spoofed = recorder.record(
            reporter(who, log_name),
            http_entry(cluster=cluster, headers=headers, authority="admin.default"),
        )
        assert plain == spoofed


def test_a_gateway_is_a_client_named_by_its_namespace_and_name() -> None:
    rec = Recorder().record(reporter(EDGE, "gateway"), http_entry(cluster=API_CLUSTER))
    assert rec is not None
    assert (rec.view, rec.source, rec.source_kind) == ("client", "default/edge", "gateway")


def test_an_external_service_is_an_external_node() -> None:
    cluster = outbound_cluster(("default", "payments"), "https")
    rec = Recorder().record(
        reporter(WEB_1, "outbound"),
        http_entry(cluster=cluster, tags={DESTINATION_KIND_TAG: "external"}),
    )
    assert rec is not None
    assert (rec.destination, rec.destination_kind) == ("default/payments", "external")


def test_a_reply_without_an_upstream_names_the_routes_service_or_the_authority() -> None:
    recorder, web = Recorder(), reporter(WEB_1, "outbound")
    denied = recorder.record(
        web, http_entry(status=403, upstream=None, tags={DESTINATION_TAG: "shop/api"})
    )
    assert denied is not None
    assert (denied.destination, denied.destination_kind, denied.instance) == (
        "shop/api",
        "service",
        "",
    )
    lost = recorder.record(web, http_entry(status=404, upstream=None, authority="nowhere:81"))
    assert lost is not None
    assert (lost.destination, lost.destination_kind) == ("unknown:nowhere:81", "unknown")


def test_only_finished_requests_are_records() -> None:
    recorder, web = Recorder(), reporter(WEB_1, "outbound")
    for log_type in (accesslog_pb2.DownstreamPeriodic, accesslog_pb2.DownstreamStart,
                     accesslog_pb2.UpstreamEnd):  # fmt: skip
        assert recorder.record(web, http_entry(cluster=API_CLUSTER, log_type=log_type)) is None
    for log_type in (accesslog_pb2.DownstreamEnd, accesslog_pb2.NotSet):
        assert recorder.record(web, http_entry(cluster=API_CLUSTER, log_type=log_type))


def test_no_response_is_status_zero() -> None:
    entry = http_entry(cluster=API_CLUSTER)
    entry.response.ClearField("response_code")
    rec = Recorder().record(reporter(WEB_1, "outbound"), entry)
    assert rec is not None and rec.status == 0


def test_cluster_names_parse_back_as_the_translator_builds_them() -> None:
    for ref, port, subset in (
        (("default", "web"), "http", ()),
        (("shop", "cart-2"), "grpc", (("version", "v2"), ("tier", "gold.1"))),
    ):
        assert outbound_destination(outbound_cluster(ref, port, subset)) == f"{ref[0]}/{ref[1]}"
    for other in ("inbound|http", "outbound|web|http", "gossamer-xds", "outbound|a/b|", ""):
        assert outbound_destination(other) is None


def test_a_node_or_log_name_we_cannot_use_is_refused_naming_the_field() -> None:
    node = base_pb2.Node()
    fill_node(node, WEB_1)
    with pytest.raises(GossamerError, match=r"log_name 'access'"):
        Reporter.of(node, "access")
    with pytest.raises(GossamerError, match=r"node\.id"):
        Reporter.of(base_pb2.Node(id="web-1"), "outbound")
