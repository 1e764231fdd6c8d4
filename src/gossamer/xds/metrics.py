"""The xDS server's Prometheus metrics, and the operator's summary read back from them.

``XdsMonitor`` (``gossamer.xds.monitor``) feeds these on stream events; ``/metrics``
exposes them and ``GET /v1/proxies/summary`` (``gossamer proxy-status --summary``) reads the
same registry back through ``summary_of``, so both show the same figures.

The gauges about proxies are computed when the registry is collected (a scrape), in one
pass over the open streams that reads flags each stream keeps up to date on its own
events: nothing is scanned per push, and the pass costs ~1 ms at 1,000 proxies (a whole
``/metrics`` text ~2.5 ms). See docs/xds.md, "Metrics", for what each one means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gossamer.xds.resources import PUSH_ORDER

#: push and sync latency buckets (seconds)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: the ``type`` of the summary's latency row for all types at once (the sync latency)
ALL_TYPES = "all"

CONNECTED = "gossamer_xds_connected_proxies"
OUT_OF_SYNC = "gossamer_xds_proxies_out_of_sync"
NACKING = "gossamer_xds_proxies_nacking"
QUEUE_DEPTH = "gossamer_xds_queue_depth"
PUSH_LATENCY = "gossamer_xds_push_latency_seconds"
SYNC_LATENCY = "gossamer_xds_sync_latency_seconds"


@dataclass(frozen=True, slots=True)
class ProxyCounts:
    """What the open streams say at one moment (``XdsMonitor.counts``)."""

    #: connected proxies (node ids) that have not ACKed all of their newest snapshot
    out_of_sync: int
    #: connected proxies whose last response of some type was NACKed
    nacking: int
    #: (stream, type) pairs with a response sent and neither ACKed nor NACKed yet
    queue_depth: int


class _ProxyGauges(Collector):
    """The three gauges of ``ProxyCounts``, from one ``counts()`` call per scrape."""

    def __init__(self, counts: Callable[[], ProxyCounts]) -> None:
        self._counts = counts

    def _families(self, counts: ProxyCounts | None) -> list[Metric]:
        families: list[Metric] = []
        for name, doc, value in (
            (
                OUT_OF_SYNC,
                "Connected proxies that have not ACKed all of their newest snapshot",
                counts.out_of_sync if counts else None,
            ),
            (
                NACKING,
                "Connected proxies whose last response of some type was NACKed",
                counts.nacking if counts else None,
            ),
            (
                QUEUE_DEPTH,
                "xDS responses sent and not yet ACKed or NACKed (at most one per stream "
                "and type: a stream sends only the newest snapshot)",
                counts.queue_depth if counts else None,
            ),
        ):
            families.append(GaugeMetricFamily(name, doc, value=value))
        return families

    def describe(self) -> Iterable[Metric]:
        return self._families(None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._counts())


class XdsMetrics:
    """The metrics of one xDS server, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry, counts: Callable[[], ProxyCounts]) -> None:
        self.connected = Gauge(CONNECTED, "Proxies with an open ADS stream", registry=registry)
        self.pushes = Counter(
            "gossamer_xds_pushes", "xDS responses sent", ["type"], registry=registry
        )
        self.nacks = Counter(
            "gossamer_xds_nacks", "xDS responses rejected by Envoy", ["type"], registry=registry
        )
        self.push_latency = Histogram(
            PUSH_LATENCY,
            "From a change seen by the control plane to the proxy ACKing all of it of one "
            "resource type",
            ["type"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.sync_latency = Histogram(
            SYNC_LATENCY,
            "From a change seen by the control plane to the proxy ACKing all of it (every type)",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        registry.register(_ProxyGauges(counts))
        # (``labels()`` costs a lock and a dict look-up per call: each stream event reads
        # the child of its type from here instead)
        self.pushes_of = {t: self.pushes.labels(t.short) for t in PUSH_ORDER}
        self.nacks_of = {t: self.nacks.labels(t.short) for t in PUSH_ORDER}
        self.push_latency_of = {t: self.push_latency.labels(t.short) for t in PUSH_ORDER}


# -- the summary, read back from a registry ------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypeLatency:
    #: a resource type's short name, or ``ALL_TYPES``
    type: str
    #: changes measured since the control plane started
    count: int
    #: seconds, estimated from the histogram's buckets (None: nothing measured)
    p50: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class XdsSummary:
    connected: int
    in_sync: int
    out_of_sync: int
    nacking: int
    queue_depth: int
    #: per type in push order, then ``ALL_TYPES``
    latency: tuple[TypeLatency, ...]


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The ``q`` quantile of a histogram given as (upper bound, cumulative count) pairs
    sorted by bound, interpolated within its bucket as PromQL's ``histogram_quantile`` does
    (None when empty; the highest finite bound when it falls in the ``+Inf`` bucket)."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _families(registry: CollectorRegistry) -> Iterator[Metric]:
    wanted = {CONNECTED, OUT_OF_SYNC, NACKING, QUEUE_DEPTH, PUSH_LATENCY, SYNC_LATENCY}
    return (m for m in registry.collect() if m.name in wanted)


def _latency(family: Metric | None, types: Sequence[str | None]) -> list[TypeLatency]:
    """Per type (None: the unlabelled histogram) its count, p50 and p99."""
    buckets: dict[str | None, list[tuple[float, float]]] = {t: [] for t in types}
    for sample in family.samples if family is not None else ():
        if sample.name.endswith("_bucket"):
            t = sample.labels.get("type")
            if t in buckets:
                buckets[t].append((float(sample.labels["le"]), sample.value))
    out = []
    for t, bs in buckets.items():
        bs.sort()
        count = int(bs[-1][1]) if bs else 0
        out.append(TypeLatency(t or ALL_TYPES, count, quantile(bs, 0.5), quantile(bs, 0.99)))
    return out


def summary_of(registry: CollectorRegistry) -> XdsSummary:
    """The summary of the xDS metrics ``registry`` holds (one collection of it)."""
    by_name = {m.name: m for m in _families(registry)}

    def gauge(name: str) -> int:
        family = by_name.get(name)
        return int(family.samples[0].value) if family is not None and family.samples else 0

    connected, out_of_sync = gauge(CONNECTED), gauge(OUT_OF_SYNC)
    latency = [
        *_latency(by_name.get(PUSH_LATENCY), [t.short for t in PUSH_ORDER]),
        *_latency(by_name.get(SYNC_LATENCY), [None]),
    ]
    return XdsSummary(
        connected=connected,
        in_sync=max(0, connected - out_of_sync),
        out_of_sync=out_of_sync,
        nacking=gauge(NACKING),
        queue_depth=gauge(QUEUE_DEPTH),
        latency=tuple(latency),
    )
