"""Every request counted in the proxy's own stats: Envoy's stats access logger
(``envoy.access_loggers.stats``; docs/telemetry.md, "Collection").

Instead of one gRPC message per request, the stats access logger adds each finished
request to Envoy stats tagged with what a view needs (destination, upstream host, status,
method and route, the verified peer); Envoy's OpenTelemetry stat sink
(``translate.stat_sink``) pushes them, cumulative, every ``stat_sink.FLUSH_INTERVAL``:

- ``gossamer.rq_time_us``: a histogram of the request's duration in microseconds; its
  sample count is the exact number of requests, its buckets (``stat_sink.LATENCY_BUCKETS_US``)
  give the latency quantiles;
- ``gossamer.rq_bytes_in`` / ``gossamer.rq_bytes_out``: counters of the request's and the
  response's bytes (headers + body: two counters each, Envoy takes one operator per value);
- ``gossamer.rq_attempts``: a counter of upstream attempts (the client view's retries).

It is what the translator gives every HCM by default (``Mesh.spec.telemetry.requests:
stats``, ``request_log``: the histogram only, which measured cheapest, one tag per field);
``logs`` gives the gRPC access logger (``translate.telemetry``) instead.

Envoy formats each tag of each request apart and stores its name and value as dynamic stat
names before it looks the tagged stat up. The ``joined`` layout writes the literals into
one tag's format and formats each of Envoy's commands once (one tag instead of 8 in the
client view, 5 in the server view); the service splits it (``split_joined``) and reads
series of either layout. In the chain it measured no cheaper than one tag per field
(0.93-1.13x of it over eight measurements, docs/benchmarks.md), so it is not the default:
``bench/telemetry.py --chain --configs off,stats,stats-joined`` measures it again.

The config is sent as an ``xds.type.v3.TypedStruct`` made from the typed message: Envoy 1.40
deprecates ``stat_prefix`` for ``stats_scope`` (a ``type.v3.Scope``), which the installed
xds-protos do not have yet; Envoy converts the struct with its own descriptors.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.extensions.access_loggers.stats.v3 import stats_pb2 as stats_log_pb2
from google.protobuf import json_format, struct_pb2
from xds.type.v3 import typed_struct_pb2

from gossamer.errors import GossamerError
from gossamer.model.mesh import Mesh
from gossamer.translate import telemetry
from gossamer.translate.common import any_of
from gossamer.translate.telemetry import (
    DESTINATION_KIND_TAG,
    DESTINATION_TAG,
    GATEWAY,
    INBOUND,
    OUTBOUND,
)

STATS_ACCESS_LOG = "envoy.access_loggers.stats"
_CONFIG_TYPE = "type.googleapis.com/envoy.extensions.access_loggers.stats.v3.Config"
#: every stat this logger makes starts with this (the stat sink keeps exactly these)
PREFIX = "gossamer"
DURATION = "rq_time_us"
ATTEMPTS = "rq_attempts"
BYTES = {
    "rq_bytes_in_headers": "%REQUEST_HEADERS_BYTES%",
    "rq_bytes_in_body": "%BYTES_RECEIVED%",
    "rq_bytes_out_headers": "%RESPONSE_HEADERS_BYTES%",
    "rq_bytes_out_body": "%BYTES_SENT%",
}
WIRE_BYTES = {
    "rq_wire_bytes_in": "%DOWNSTREAM_WIRE_BYTES_RECEIVED%",
    "rq_wire_bytes_out": "%DOWNSTREAM_WIRE_BYTES_SENT%",
}
#: tag names (``gossamer.telemetry.stats_entries`` reads them)
VIEW_TAG = "view"
CLUSTER_TAG = "cluster"
HOST_TAG = "host"
CODE_TAG = "code"
METHOD_TAG = "method"
ROUTE_TAG = "route"
PEER_TAG = "peer"
#: which counters the logger keeps besides the latency histogram: ``full`` (request and
#: response bytes, headers and body apart; attempts), ``wire`` (the stream's bytes on the
#: wire, two counters), ``none`` (the histogram only: requests, status, latency, mTLS)
Counters = Literal["full", "wire", "none"]
#: how the tags travel: ``tags``, one Envoy tag per field; ``joined``, every field in the
#: one tag ``JOINED_TAG``, ``JOINED_FIELDS`` in order, separated by ``SEPARATOR`` (Envoy
#: formats and stores each tag of each request apart, name and value: one tag is cheaper)
Layout = Literal["tags", "joined"]
JOINED_TAG = "rq"
SEPARATOR = " "
#: the joined tag's fields, in order; the two a peer chooses come last (a method is an
#: HTTP token, which has no space; the peer's URI SAN is the rest, whatever it holds)
JOINED_FIELDS = ("view", "dst", "dst_kind", "code", "route", "cluster", "host", "method", "peer")
_DURATION_FORMAT = "%COMMON_DURATION(DS_RX_BEG:DS_TX_END:us)%"


def _tags(log_name: str, literals: tuple[tuple[str, str], ...]) -> list[stats_log_pb2.Config.Tag]:
    Tag = stats_log_pb2.Config.Tag
    tags = [Tag(name=VIEW_TAG, value_format=log_name)]
    tags += [Tag(name=name, value_format=value) for name, value in literals]
    tags += [
        Tag(name=CODE_TAG, value_format="%RESPONSE_CODE%"),
        Tag(name=METHOD_TAG, value_format="%REQ(:METHOD)%"),
        Tag(name=ROUTE_TAG, value_format="%ROUTE_NAME%"),
    ]
    if log_name == INBOUND:  # the caller: the certificate it presented, verified
        tags.append(Tag(name=PEER_TAG, value_format="%DOWNSTREAM_PEER_URI_SAN%"))
    else:  # the callee: the upstream cluster and host, and the certificate it presented
        tags += [
            Tag(name=CLUSTER_TAG, value_format="%UPSTREAM_CLUSTER%"),
            Tag(name=HOST_TAG, value_format="%UPSTREAM_HOST%"),
            Tag(name=PEER_TAG, value_format="%UPSTREAM_PEER_URI_SAN%"),
        ]
    return tags


def _joined(log_name: str, literals: tuple[tuple[str, str], ...]) -> list[stats_log_pb2.Config.Tag]:
    """The one tag of the ``joined`` layout: literals written out, Envoy's commands once."""
    given = dict(literals)
    inbound = log_name == INBOUND
    values = {
        VIEW_TAG: log_name,
        "dst": given.get("dst") or "-",
        "dst_kind": given.get("dst_kind") or "-",
        CODE_TAG: "%RESPONSE_CODE%",
        ROUTE_TAG: "%ROUTE_NAME%",
        CLUSTER_TAG: "-" if inbound else "%UPSTREAM_CLUSTER%",
        HOST_TAG: "-" if inbound else "%UPSTREAM_HOST%",
        METHOD_TAG: "%REQ(:METHOD)%",
        PEER_TAG: "%DOWNSTREAM_PEER_URI_SAN%" if inbound else "%UPSTREAM_PEER_URI_SAN%",
    }
    value = SEPARATOR.join(values[name] for name in JOINED_FIELDS)
    return [stats_log_pb2.Config.Tag(name=JOINED_TAG, value_format=value)]


def split_joined(value: str) -> dict[str, str]:
    """The fields of a ``JOINED_TAG`` value (``_joined``), by their ``tags`` layout names;
    a field Envoy had no value for is "" or "-", as in that layout."""
    parts = value.split(SEPARATOR, len(JOINED_FIELDS) - 1)
    if len(parts) != len(JOINED_FIELDS):
        return {}
    return {
        name: part
        for name, part in zip(JOINED_FIELDS, parts, strict=True)
        if not (name in ("dst", "dst_kind") and part == "-")
    }


def config(
    log_name: str,
    literals: tuple[tuple[str, str], ...],
    *,
    counters: Counters = "full",
    layout: Layout = "tags",
) -> stats_log_pb2.Config:
    """The logger's typed config, without its scope (``access_log`` adds it)."""
    Config = stats_log_pb2.Config
    tags = _joined(log_name, literals) if layout == "joined" else _tags(log_name, literals)
    out = Config()
    out.histograms.add(
        stat=Config.Stat(name=DURATION, tags=tags),
        unit=Config.Histogram.Microseconds,
        value_format=_DURATION_FORMAT,
    )
    if counters == "wire":
        for name, value in WIRE_BYTES.items():
            out.counters.add(stat=Config.Stat(name=name, tags=tags), value_format=value)
    if counters == "full":
        for name, value in BYTES.items():
            out.counters.add(stat=Config.Stat(name=name, tags=tags), value_format=value)
        if log_name != INBOUND:
            out.counters.add(
                stat=Config.Stat(name=ATTEMPTS, tags=tags),
                value_format="%UPSTREAM_REQUEST_ATTEMPT_COUNT%",
            )
    return out


def _access_log(
    log_name: str, literals: tuple[tuple[str, str], ...], counters: Counters, layout: Layout
) -> accesslog_pb2.AccessLog:
    return wrapped(config(log_name, literals, counters=counters, layout=layout))


def wrapped(typed_config: stats_log_pb2.Config) -> accesslog_pb2.AccessLog:
    """The logger of ``typed_config``, scoped under ``PREFIX``, as Envoy 1.40 takes it."""
    typed = json_format.MessageToDict(typed_config, preserving_proto_field_name=True)
    typed["stats_scope"] = {"prefix": PREFIX}
    value = struct_pb2.Struct()
    value.update(typed)
    wrapped = typed_struct_pb2.TypedStruct(type_url=_CONFIG_TYPE, value=value)
    return accesslog_pb2.AccessLog(name=STATS_ACCESS_LOG, typed_config=any_of(wrapped))


@lru_cache(maxsize=4096)
def _cached(
    log_name: str, literals: tuple[tuple[str, str], ...], counters: Counters, layout: Layout
) -> accesslog_pb2.AccessLog:
    return _access_log(log_name, literals, counters, layout)


def access_log(
    log_name: str,
    tags: Mapping[str, str] | None = None,
    *,
    counters: Counters = "full",
    layout: Layout = "tags",
) -> accesslog_pb2.AccessLog:
    """The stats logger of one HCM (``log_name``: ``INBOUND``, ``OUTBOUND``, ``GATEWAY``),
    with ``tags`` (``translate.telemetry.outbound_tags``) as literal tags. Shared: copy it."""
    if log_name not in (INBOUND, OUTBOUND, GATEWAY):
        raise GossamerError(f"log_name {log_name!r}: expected inbound, outbound or gateway")
    given = (tags or {}).items()
    literals = tuple(sorted((_LITERALS[k], v) for k, v in given if k in _LITERALS))
    return _cached(log_name, literals, counters, layout)


_LITERALS = {DESTINATION_TAG: "dst", DESTINATION_KIND_TAG: "dst_kind"}


def request_log(
    mesh: Mesh, log_name: str, tags: Mapping[str, str] | None = None
) -> accesslog_pb2.AccessLog:
    """The logger counting every request of one HCM, as ``Mesh.spec.telemetry.requests``
    says: ``stats``, this module's logger with the latency histogram only (``counters:
    none``: what measured cheapest, docs/telemetry.md "Cost"), one tag per field (the
    ``joined`` layout measured no cheaper in the chain: 0.93-1.13x of it, docs/benchmarks.md);
    ``logs``, the gRPC access logger (``translate.telemetry.access_log``). Shared: copy it."""
    if mesh.spec.telemetry.requests == "logs":
        return telemetry.access_log(log_name, tags)
    return access_log(log_name, tags, counters="none")
