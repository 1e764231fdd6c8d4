"""Minute buckets of records, keyed per the telemetry contract.

Key: (view, source, source kind, destination, destination kind, instance, endpoint, epoch
minute). Values: requests, 4xx, 5xx (status 0, no response, counts as 5xx: the request
failed), bytes received and sent, mTLS requests, retries, and a DDSketch of latencies
(relative accuracy 1 %, mergeable: a window's quantiles come from merged minutes, never
from averaged percentiles).

Latencies wait in a list and go into the sketch in batches (``Bucket.settle``): one call
per batch instead of one per request on the ingestion path.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ddsketch import DDSketch
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.pb import ddsketch_pb2
from ddsketch.pb.proto import DDSketchProto

from gossamer.telemetry.entries import NodeKind, Record, View

#: the sketches' relative accuracy (the contract's 1 %)
RELATIVE_ACCURACY = 0.01
#: latencies a bucket holds before adding them to its sketch
_BATCH = 256


class Key(NamedTuple):
    view: View
    source: str
    source_kind: NodeKind
    destination: str
    destination_kind: NodeKind
    instance: str
    endpoint: str
    minute: int


def new_sketch() -> DDSketch:
    return DDSketch(RELATIVE_ACCURACY)


def sketch_bytes(sketch: BaseDDSketch) -> bytes:
    return bytes(DDSketchProto.to_proto(sketch).SerializeToString())  # type: ignore[no-untyped-call]


def sketch_of(data: bytes) -> BaseDDSketch:
    proto = ddsketch_pb2.DDSketch()
    proto.ParseFromString(data)
    sketch: BaseDDSketch = DDSketchProto.from_proto(proto)  # type: ignore[no-untyped-call]
    return sketch


class Bucket:
    """One key's figures in one minute."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "e4xx",
        "e5xx",
        "mtls",
        "pending",
        "requests",
        "retries",
        "sketch",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.e4xx = 0
        self.e5xx = 0
        self.bytes_received = 0
        self.bytes_sent = 0
        self.mtls = 0
        self.retries = 0
        self.pending: list[float] = []
        self.sketch: BaseDDSketch = new_sketch()

    def settle(self) -> BaseDDSketch:
        """Add the waiting latencies to the sketch; the sketch."""
        add = self.sketch.add
        for value in self.pending:
            add(value)
        self.pending.clear()
        return self.sketch

    def merge(self, other: Bucket) -> None:
        self.requests += other.requests
        self.e4xx += other.e4xx
        self.e5xx += other.e5xx
        self.bytes_received += other.bytes_received
        self.bytes_sent += other.bytes_sent
        self.mtls += other.mtls
        self.retries += other.retries
        self.settle().merge(other.settle())


#: Envoy's default histogram buckets, which Istio's metrics use: upper bounds (``le``) of
#: latencies in ms and of sizes in bytes
HISTOGRAM_BOUNDS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000,
    300000, 600000, 1800000, 3600000,
)  # fmt: skip
_SLOTS = len(HISTOGRAM_BOUNDS) + 1  # (+Inf)


class TotalKey(NamedTuple):
    """What one cumulative total is kept per: everything the Prometheus export's labels
    come from (``telemetry.prometheus``), nothing finer (no minute, instance, endpoint)."""

    view: View
    workload: str
    source: str
    source_kind: NodeKind
    destination: str
    destination_kind: NodeKind
    status: int
    flags: str
    mtls: bool
    peer_principal: str
    local_principal: str


class Total:
    """Requests since the process started, and their histograms: per-slot counts (not
    cumulative; slot i counts values <= ``HISTOGRAM_BOUNDS[i]``, the last +Inf) of the
    latency (ms), then the request's and the response's bytes, with their sums."""

    __slots__ = ("counts", "requests", "sums")

    def __init__(self) -> None:
        self.requests = 0
        self.counts = [0] * (3 * _SLOTS)
        self.sums = [0.0, 0, 0]

    def merge(self, other: Total) -> None:
        self.requests += other.requests
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.sums = [a + b for a, b in zip(self.sums, other.sums, strict=True)]


class Aggregator:
    """Open minutes in memory, by minute then key; and cumulative totals since start."""

    def __init__(self) -> None:
        self.minutes: dict[int, dict[Key, Bucket]] = {}
        #: records added since start (for the service's own counters)
        self.records = 0
        #: per ``TotalKey`` (a plain tuple of its fields), never taken by a flush: the
        #: Prometheus counters, monotonic while the process lives
        self.totals: dict[tuple[object, ...], Total] = {}

    def add(self, rec: Record) -> None:
        minute = rec.minute
        buckets = self.minutes.get(minute)
        if buckets is None:
            buckets = self.minutes[minute] = {}
        key = Key(rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], minute)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = Bucket()
        bucket.requests += 1
        status = rec.status
        if status >= 500 or status == 0:
            bucket.e5xx += 1
        elif status >= 400:
            bucket.e4xx += 1
        bucket.bytes_received += rec.bytes_received
        bucket.bytes_sent += rec.bytes_sent
        if rec.mtls:
            bucket.mtls += 1
        bucket.retries += rec.retries
        pending = bucket.pending
        latency = rec.latency_ms
        pending.append(latency)
        if len(pending) >= _BATCH:
            bucket.settle()
        self.records += 1
        tkey = (rec[0], rec[15], rec[1], rec[2], rec[3], rec[4], status, rec[14], rec[12],
                rec[16], rec[17])  # fmt: skip
        total = self.totals.get(tkey)
        if total is None:
            total = self.totals[tkey] = Total()
        total.requests += 1
        counts = total.counts
        sums = total.sums
        counts[bisect_left(HISTOGRAM_BOUNDS, latency)] += 1
        sums[0] += latency
        counts[_SLOTS + bisect_left(HISTOGRAM_BOUNDS, rec.bytes_received)] += 1
        sums[1] += rec.bytes_received
        counts[2 * _SLOTS + bisect_left(HISTOGRAM_BOUNDS, rec.bytes_sent)] += 1
        sums[2] += rec.bytes_sent

    def add_counted(self, rec: Record, count: int, latencies: list[tuple[float, int]]) -> None:
        """``count`` requests alike but for their latency: ``latencies`` (ms, how many),
        whose counts add up to ``count`` (from Envoy's stats: ``telemetry.stats_records``)."""
        buckets = self.minutes.setdefault(rec.minute, {})
        key = Key(rec[0], rec[1], rec[2], rec[3], rec[4], rec[5], rec[6], rec.minute)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = Bucket()
        bucket.requests += count
        status = rec.status
        if status >= 500 or status == 0:
            bucket.e5xx += count
        elif status >= 400:
            bucket.e4xx += count
        bucket.bytes_received += rec.bytes_received
        bucket.bytes_sent += rec.bytes_sent
        if rec.mtls:
            bucket.mtls += count
        bucket.retries += rec.retries
        sketch = bucket.settle()
        self.records += count
        tkey = (rec[0], rec[15], rec[1], rec[2], rec[3], rec[4], status, rec[14], rec[12],
                rec[16], rec[17])  # fmt: skip
        total = self.totals.setdefault(tkey, Total())
        total.requests += count
        for latency, n in latencies:
            sketch.add(latency, n)
            total.counts[bisect_left(HISTOGRAM_BOUNDS, latency)] += n
            total.sums[0] += latency * n
        total.counts[_SLOTS] += count  # the bytes: not counted per request (0)
        total.counts[2 * _SLOTS] += count

    def take(self, before_minute: int | None = None) -> dict[Key, Bucket]:
        """Remove and return the buckets of minutes before ``before_minute`` (all: None),
        their sketches settled."""
        out: dict[Key, Bucket] = {}
        for minute in sorted(self.minutes):
            if before_minute is not None and minute >= before_minute:
                continue
            for key, bucket in self.minutes.pop(minute).items():
                bucket.settle()
                out[key] = bucket
        return out

    def restore(self, saved: Iterable[tuple[Key, Bucket]]) -> None:
        """Put back the open buckets a killed process had checkpointed (``store``)."""
        for key, bucket in saved:
            buckets = self.minutes.setdefault(key.minute, {})
            kept = buckets.get(key)
            if kept is None:
                buckets[key] = bucket
            else:
                kept.merge(bucket)

    def open_buckets(self, since_minute: int) -> Iterator[tuple[Key, Bucket]]:
        """The open buckets from ``since_minute`` on, settled (for queries)."""
        for minute, buckets in self.minutes.items():
            if minute >= since_minute:
                for key, bucket in buckets.items():
                    bucket.settle()
                    yield key, bucket
