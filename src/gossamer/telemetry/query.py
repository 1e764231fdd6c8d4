"""Answers over a window of minute buckets: the topology and metric series.

Both views are kept apart until here. An edge (source, destination) is shown from the
**client view** when some caller's proxy reported it (the caller saw every attempt's
outcome, including requests that never reached the server), otherwise from the **server
view** (a caller without a sidecar, or ``unauthenticated``). ``view=client`` or
``view=server`` shows one view only (docs/telemetry.md, "Views").

Error rule: 4xx and 5xx apart; a request without a response (status 0) is a 5xx.
Quantiles come from the window's merged sketches (1 % relative accuracy).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

from gossamer.errors import FieldError, ValidationError
from gossamer.telemetry.aggregate import Bucket, Key
from gossamer.telemetry.stat_sink import Gap

ViewChoice = Literal["merged", "client", "server"]
VIEWS: tuple[ViewChoice, ...] = ("merged", "client", "server")
Buckets = Iterable[tuple[Key, Bucket]]
_KIND_RANK = {"gateway": 3, "service": 2, "external": 1, "unknown": 0}
_WINDOW = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: the longest window a query may ask for
MAX_WINDOW_S = 31 * 86400


def parse_window(text: str, field: str = "since", max_s: int = MAX_WINDOW_S) -> int:
    """``30s``, ``5m``, ``2h``, ``7d`` -> seconds; anything else is refused, naming ``field``."""
    m = _WINDOW.fullmatch(text.strip())
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)] if m else 0
    if not m or seconds > max_s:
        raise ValidationError(
            [
                FieldError(
                    f"{text[:40]!r} is not a window: write a number and a unit s, m, h or d "
                    f"(e.g. 5m), at most {max_s // 86400}d",
                    field,
                )
            ]
        )
    return seconds


def parse_view(text: str) -> ViewChoice:
    for v in VIEWS:
        if text == v:
            return v
    raise ValidationError([FieldError(f"{text[:40]!r}: use one of {', '.join(VIEWS)}", "view")])


def _merged(into: dict[Any, Bucket], key: Any, bucket: Bucket) -> None:
    total = into.get(key)
    if total is None:
        total = into[key] = Bucket()
    total.merge(bucket)


def _chosen(buckets: Buckets, view: ViewChoice) -> list[tuple[Key, Bucket]]:
    """The buckets of the view each edge is shown from."""
    items = list(buckets)
    if view != "merged":
        return [(k, b) for k, b in items if k.view == view]
    by_client = {(k.source, k.destination) for k, _ in items if k.view == "client"}
    return [
        (k, b) for k, b in items if k.view == "client" or (k.source, k.destination) not in by_client
    ]


def figures(bucket: Bucket, window_s: float) -> dict[str, Any]:
    """One edge's, node's or minute's figures in the API's names."""
    sketch = bucket.settle()
    n = bucket.requests

    def q(x: float) -> float | None:
        value = sketch.get_quantile_value(x) if n else None
        return None if value is None else round(float(value), 3)

    return {
        "requests": n,
        "rps": round(n / window_s, 3) if window_s > 0 else None,
        "errors": bucket.e4xx + bucket.e5xx,
        "errors4xx": bucket.e4xx,
        "errors5xx": bucket.e5xx,
        "errorRate": round((bucket.e4xx + bucket.e5xx) / n, 4) if n else 0.0,
        "latencyMs": {"p50": q(0.5), "p90": q(0.9), "p99": q(0.99)},
        "mtls": round(bucket.mtls / n, 4) if n else 0.0,
        "bytesReceived": bucket.bytes_received,
        "bytesSent": bucket.bytes_sent,
        "retries": bucket.retries,
    }


def covered(window_s: int, now: float) -> tuple[int, float]:
    """The first minute of a window of ``window_s`` ending ``now``, and the seconds its
    buckets cover: from that minute's start to now (a 1m window read 30 s into a minute
    covers 90 s). Rates divide by this, never by the window asked."""
    since_minute = (int(now) - window_s) // 60
    return since_minute, max(1.0, now - since_minute * 60)


def topology(
    buckets: Buckets,
    window_s: float,
    view: ViewChoice = "merged",
    *,
    covered_s: float | None = None,
    gaps: Iterable[Gap] = (),
) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...]}`` over the buckets of one window; rates per
    ``covered_s`` (``covered``), default ``window_s``. ``gaps``: entries proxies wrote that
    never arrived in the window (``stat_sink``), flagged on their nodes and edges."""
    per_s = covered_s if covered_s is not None else window_s
    edges: dict[tuple[str, str], Bucket] = {}
    edge_view: dict[tuple[str, str], str] = {}
    inbound: dict[str, Bucket] = {}
    kinds: dict[str, str] = {}
    for key, bucket in _chosen(buckets, view):
        pair = (key.source, key.destination)
        _merged(edges, pair, bucket)
        _merged(inbound, key.destination, bucket)
        edge_view[pair] = key.view
        for node, kind in ((key.source, key.source_kind), (key.destination, key.destination_kind)):
            if _KIND_RANK[kind] > _KIND_RANK.get(kinds.get(node, ""), -1):
                kinds[node] = kind
    missing = missing_by_node(gaps)
    for node, (proxy_kind, _) in missing.items():
        kinds.setdefault(node, proxy_kind)  # a proxy whose every entry was lost still shows
    nodes = [
        {
            "id": node,
            "kind": kinds[node],
            **figures(inbound.get(node) or Bucket(), per_s),
            **gap_fields(missing.get(node, ("", 0))[1]),
        }
        for node in sorted(kinds)
    ]
    return {
        "windowSeconds": window_s,
        "coveredSeconds": round(per_s, 3),
        "view": view,
        "nodes": nodes,
        "edges": [
            {
                "source": s,
                "destination": d,
                "view": edge_view[(s, d)],
                **figures(edges[(s, d)], per_s),
                **gap_fields(missing.get(s, ("", 0))[1] + missing.get(d, ("", 0))[1]),
            }
            for s, d in sorted(edges)
        ],
    }


def missing_by_node(gaps: Iterable[Gap]) -> dict[str, tuple[str, int]]:
    """Topology node -> (kind, entries its proxies wrote that never arrived)."""
    out: dict[str, tuple[str, int]] = {}
    for gap in gaps:
        if gap.missing <= 0 or not gap.service:
            continue
        kind = "gateway" if gap.node.startswith("gateway~") else "service"
        out[gap.service] = (kind, out.get(gap.service, (kind, 0))[1] + gap.missing)
    return out


def gap_fields(missing: int) -> dict[str, Any]:
    """``gap``: some of the figures' entries never arrived (``missingEntries`` of them, for
    an edge those lost by the proxies at its ends, which may belong to other edges)."""
    return {"gap": missing > 0, "missingEntries": missing}


def series(
    buckets: Buckets,
    *,
    view: ViewChoice = "merged",
    source: str | None = None,
    destination: str | None = None,
) -> list[dict[str, Any]]:
    """Per-minute figures of one edge (source and destination), of the requests into a
    node (destination only) or out of it (source only), oldest minute first."""
    by_minute: dict[int, Bucket] = {}
    for key, bucket in _chosen(buckets, view):
        if source is not None and key.source != source:
            continue
        if destination is not None and key.destination != destination:
            continue
        _merged(by_minute, key.minute, bucket)
    return [
        {"minute": m, "start": m * 60, **figures(by_minute[m], 60.0)} for m in sorted(by_minute)
    ]
