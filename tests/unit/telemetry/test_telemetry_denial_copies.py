"""Envoy counts an inbound entry its denial log also wrote twice in one ``logs_written``;
the service tells the reconciliation of that second copy, and only where the proxy has a
denial log (a TLS-capable sidecar's inbound) and the denial log's filter keeps the entry
(``translate.denial_log.logged_as_denial``, the one predicate both sides use)."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.data.accesslog.v3 import accesslog_pb2
from google.protobuf import struct_pb2

from gossamer.node import SDS_KEY, fill_node
from gossamer.telemetry.aggregate import Aggregator
from gossamer.telemetry.als import AccessLogServicer
from gossamer.telemetry.entries import Reporter
from gossamer.testing.telemetry import batch, http_entry
from gossamer.translate.denial_log import (
    DENIAL_KEYS,
    DENIED,
    ENFORCED_RESULT,
    SHADOW_RESULT,
    denial_filter,
    logged_as_denial,
)
from gossamer.translate.rbac import RBAC_FILTER
from gossamer.types import ProxyIdentity

REVIEWS_1 = ProxyIdentity("sidecar", "default", "reviews-1", service="reviews")
EDGE = ProxyIdentity("gateway", "default", "edge")


def reporter(who: ProxyIdentity, log_name: str, *, sds: bool) -> Reporter:
    node = base_pb2.Node()
    fill_node(node, who, {SDS_KEY: True} if sds else None)
    return Reporter.of(node, log_name)


def rbac(fields: dict[str, object], namespace: str = RBAC_FILTER) -> base_pb2.Metadata:
    metadata = base_pb2.Metadata()
    struct = struct_pb2.Struct()
    struct.update(fields)
    metadata.filter_metadata[namespace].CopyFrom(struct)
    return metadata


def entry(metadata: base_pb2.Metadata | None, start_s: int) -> accesslog_pb2.HTTPAccessLogEntry:
    out = http_entry(cluster="inbound|http", start_s=start_s, latency_ms=0)
    if metadata is not None:
        out.common_properties.metadata.CopyFrom(metadata)
    return out


def test_the_predicate_reads_the_keys_the_filter_matches() -> None:
    keys = [f.metadata_filter.matcher.path[0].key for f in denial_filter().or_filter.filters]
    assert keys == list(DENIAL_KEYS) == [ENFORCED_RESULT, SHADOW_RESULT]
    for f in denial_filter().or_filter.filters:
        assert f.metadata_filter.matcher.filter == RBAC_FILTER
        assert f.metadata_filter.matcher.value.string_match.exact == DENIED


@pytest.mark.parametrize(
    ("metadata", "kept"),
    [
        (rbac({ENFORCED_RESULT: "denied"}), True),
        (rbac({SHADOW_RESULT: "denied", "shadow_effective_policy_id": "p"}), True),
        (rbac({ENFORCED_RESULT: "allowed", SHADOW_RESULT: "denied"}), True),
        (rbac({ENFORCED_RESULT: "allowed"}), False),
        (rbac({SHADOW_RESULT: "allowed"}), False),
        (rbac({ENFORCED_RESULT: 1.0}), False),  # not the string: Envoy's matcher says no
        (rbac({ENFORCED_RESULT: "denied"}, namespace="envoy.filters.http.other"), False),
        (base_pb2.Metadata(), False),
    ],
)
def test_what_the_denial_log_keeps(metadata: base_pb2.Metadata, kept: bool) -> None:
    before = metadata.SerializeToString()
    assert logged_as_denial(metadata) is kept
    assert metadata.SerializeToString() == before  # reading inserted nothing


def test_only_a_tls_capable_sidecars_inbound_has_a_denial_log() -> None:
    assert reporter(REVIEWS_1, "inbound", sds=True).denial_log
    assert not reporter(REVIEWS_1, "inbound", sds=False).denial_log
    assert not reporter(REVIEWS_1, "outbound", sds=True).denial_log
    assert not reporter(EDGE, "gateway", sds=True).denial_log


def told(who: Reporter) -> tuple[list[int], AccessLogServicer]:
    calls: list[int] = []
    servicer = AccessLogServicer(Aggregator(), written=lambda _node, ticks: calls.extend(ticks))
    entries = [
        entry(rbac({ENFORCED_RESULT: "allowed"}), 1_800_000_000),
        entry(rbac({ENFORCED_RESULT: "denied"}), 1_800_000_001),
        entry(rbac({SHADOW_RESULT: "denied"}), 1_800_000_002),
        entry(None, 1_800_000_003),
    ]
    servicer.ingest(who, batch(entries))
    return sorted(calls), servicer


def test_each_denial_is_told_twice_at_its_write_time() -> None:
    ticks, servicer = told(reporter(REVIEWS_1, "inbound", sds=True))
    t0 = ticks[0]  # (100 ms ticks of start + duration: the entries are 1 s apart)
    assert t0 // 10 == 1_800_000_000
    assert ticks == [t0, t0 + 10, t0 + 10, t0 + 20, t0 + 20, t0 + 30]
    assert servicer.stats.entries == servicer.stats.requests == 4  # aggregated once
    assert servicer.stats.denial_log_entries == 2
    assert servicer.received_by_node["sidecar~default~reviews-1"] == 4


@pytest.mark.parametrize(
    "who",
    [
        reporter(REVIEWS_1, "inbound", sds=False),  # RBAC denies, but there is no denial log
        reporter(REVIEWS_1, "outbound", sds=True),
    ],
)
def test_without_a_denial_log_each_entry_is_told_once(who: Reporter) -> None:
    ticks, servicer = told(who)
    assert len(ticks) == 4 and servicer.stats.denial_log_entries == 0
