"""Parsing the denial log's entries into report records (``agent.denial_receiver``)."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from google.protobuf import struct_pb2

from gossamer.agent.denial_receiver import parse_entry

WEB = "spiffe://mesh.local/ns/default/sa/web"


def _entry(
    metadata: dict[str, str], *, details: str = "", path: str = "/admin/x?q=1"
) -> accesslog_pb2.HTTPAccessLogEntry:
    e = accesslog_pb2.HTTPAccessLogEntry()
    common = e.common_properties
    common.start_time.FromMicroseconds(1_700_000_000_250_000)
    common.tls_properties.peer_certificate_properties.subject_alt_name.add(uri=WEB)
    if metadata:
        fields = struct_pb2.Struct()
        fields.update(metadata)
        common.metadata.filter_metadata["envoy.filters.http.rbac"].CopyFrom(fields)
    e.request.request_id = "rid-1"
    e.request.request_method = base_pb2.GET
    e.request.path = path
    e.response.response_code.value = 403
    e.response.response_code_details = details
    return e


def test_an_enforced_denial_becomes_a_deny_record() -> None:
    details = "rbac_access_denied_matched_policy[svc:default/reviews:/admin]"
    record = parse_entry(_entry({"enforced_engine_result": "denied"}, details=details), "d/r-1")
    assert record == {
        "workload": "d/r-1",
        "request_id": "rid-1",
        "at": 1_700_000_000.25,
        "source": "rbac",
        "decision": "deny",
        "caller": WEB,
        "method": "GET",
        "path": "/admin/x",
        "reason": details,
    }


def test_a_shadow_denial_becomes_a_would_deny_record_naming_the_shadow_policy() -> None:
    md = {"shadow_engine_result": "denied", "shadow_effective_policy_id": "svc:default/reviews"}
    record = parse_entry(_entry(md, path="/x#f"), "d/r-1")
    assert record is not None
    assert (record["source"], record["decision"], record["path"]) == (
        "rbac-shadow",
        "would-deny",
        "/x",
    )
    assert record["reason"] == "rbac_shadow_denied_matched_policy[svc:default/reviews]"


def test_allowed_and_unrelated_entries_are_not_records() -> None:
    assert parse_entry(_entry({}), "d/r-1") is None
    assert parse_entry(_entry({"shadow_engine_result": "allowed"}), "d/r-1") is None


def test_no_peer_certificate_is_an_empty_caller() -> None:
    e = _entry({"enforced_engine_result": "denied"})
    e.common_properties.ClearField("tls_properties")
    record = parse_entry(e, "d/r-1")
    assert record is not None and record["caller"] == ""
