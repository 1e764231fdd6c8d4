"""Loss made visible: each Envoy's own access-log counters against what arrived
(docs/telemetry.md, "Loss").

Envoy counts an entry it could not deliver (the service down or restarting) as written, so
only its ``logs_written`` (+ ``logs_dropped``) compared with the entries the service
received shows what was lost. Every proxy pushes those counters with Envoy's OpenTelemetry
stat sink (``translate.stat_sink``; relayed by the control plane) to ``MetricsService/
Export`` here, every 10 s, as cumulative counters stamped with the proxy's own clock.

The comparison is per node (Envoy keeps one counter for all its loggers) and exact, not a
guess from rates: every entry received is counted by when its proxy wrote it (the end of
the request, ``start_time + duration``, on the same clock as the counter's timestamp), in
100 ms ticks. A sample at ``T`` closes the interval since the previous one once
``GRACE_S`` passed after it arrived (entries still in Envoy's 1 s buffers have arrived by
then): ``D = written - received(written <= T)``. An interval is flagged with the part of
``D`` above the highest ``D`` seen so far (so an entry counted one tick early, then
late, flags nothing, and a gap is flagged once). An entry arriving after its interval was
closed is ``late``: it lowers the node's outstanding gap and its latest flagged interval.

An Envoy restart (counters from 0) is recognised by its uptime: the new one is compared
from its start. A node seen for the first time is compared from its start if this process
was up then (every entry it sent is here), else from its first sample. The state per node
is written with every flush and read back at start, so a restart of the service itself
shows what Envoy wrote while it was down.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.metrics.v1 import metrics_pb2

from gossamer.telemetry.stats_records import RequestStats
from gossamer.translate.stat_sink import (
    LOGS_DROPPED,
    LOGS_WRITTEN,
    NODE_ATTRIBUTE,
    SERVICE_ATTRIBUTE,
    UPTIME,
)

log = logging.getLogger(__name__)

#: ticks per second (an entry's write time, 100 ms)
TICKS = 10
#: a sample is compared this long after it arrived (Envoy sends entries every 1 s)
GRACE_S = 5.0
#: an Envoy whose start moved by more than this (its uptime is whole seconds) restarted
RESTART_SLACK_S = 3.0
#: entries of a node never sampled are kept this long (its Envoy pushes every 10 s)
UNSAMPLED_KEEP_S = 600.0


@dataclass(frozen=True)
class Sample:
    node: str
    service: str
    t_s: float
    written: int
    uptime_s: float | None

    @property
    def start_s(self) -> float | None:
        return None if self.uptime_s is None else self.t_s - self.uptime_s - 1.0


@dataclass
class NodeState:
    """One proxy's baseline: counters and entries up to its last compared sample."""

    node: str
    service: str
    start_s: float
    t_s: float
    written: int = 0
    received: int = 0
    high: int = 0
    restarts: int = 0

    def outstanding(self) -> int:
        return max(0, self.written - self.received)


@dataclass
class Gap:
    node: str
    service: str
    from_s: float
    to_s: float
    missing: int

    def as_json(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "service": self.service,
            "from": round(self.from_s, 3),
            "to": round(self.to_s, 3),
            "missingEntries": self.missing,
        }


def tick(t_s: float) -> int:
    return int(t_s * TICKS)


def sample_of(resource_metrics: metrics_pb2.ResourceMetrics) -> Sample | None:
    """The counters of one proxy's export; None without its node attribute."""
    attributes = {a.key: a.value.string_value for a in resource_metrics.resource.attributes}
    node = attributes.get(NODE_ATTRIBUTE)
    if not node:
        return None
    values: dict[str, int] = {}
    t_ns = 0
    for scope in resource_metrics.scope_metrics:
        for metric in scope.metrics:
            points = metric.sum.data_points if metric.HasField("sum") else metric.gauge.data_points
            for point in points:
                values[metric.name] = values.get(metric.name, 0) + int(point.as_int)
                t_ns = max(t_ns, point.time_unix_nano)
    if not t_ns:
        return None
    uptime = values.get(UPTIME)
    written = values.get(LOGS_WRITTEN, 0) + values.get(LOGS_DROPPED, 0)
    service = attributes.get(SERVICE_ATTRIBUTE, "")
    return Sample(node, service, t_ns / 1e9, written, None if uptime is None else float(uptime))


class Reconciler:
    """Entries received by write time, counter samples, and the gaps found."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started_s = clock()
        #: node -> write tick -> entries not yet compared (after the node's baseline)
        self.pending: dict[str, Counter[int]] = {}
        self.states: dict[str, NodeState] = {}
        #: samples waiting for their grace: (arrival, sample)
        self.waiting: list[tuple[float, Sample]] = []
        #: gaps found and not yet written; ``recent``: the latest per node (for late entries)
        self.new_gaps: list[Gap] = []
        self.recent: dict[str, Gap] = {}
        self.samples = 0
        self.late = 0
        self.unattributed = 0

    # -- entries -----------------------------------------------------------------------

    def received(self, node: str, ticks: list[int]) -> None:
        """Entries of ``node`` by write tick (the hot path: one call per message)."""
        pending = self.pending.get(node)
        if pending is None:
            pending = self.pending[node] = Counter()
        state = self.states.get(node)
        if state is not None and ticks and min(ticks) <= tick(state.t_s):
            bound = tick(state.t_s)
            late = sum(1 for t in ticks if t <= bound)
            self._late(state, late)
            ticks = [t for t in ticks if t > bound]
        pending.update(ticks)

    def _late(self, state: NodeState, n: int) -> None:
        """``n`` entries arrived after their interval was compared."""
        self.late += n
        state.received += n
        state.high = max(0, state.high - n)
        gap = self.recent.get(state.node)
        if gap is not None:
            gap.missing = max(0, gap.missing - n)

    # -- samples -----------------------------------------------------------------------

    def sampled(self, sample: Sample) -> None:
        self.samples += 1
        self.waiting.append((self.clock(), sample))

    def settle(self, now: float | None = None) -> None:
        """Compare the samples whose grace has passed."""
        now = self.clock() if now is None else now
        due = [s for arrived, s in self.waiting if arrived + GRACE_S <= now]
        self.waiting = [(a, s) for a, s in self.waiting if a + GRACE_S > now]
        for sample in sorted(due, key=lambda s: s.t_s):
            self._compare(sample)
        self._forget_unsampled(now)

    def _compare(self, sample: Sample) -> None:
        state = self.states.get(sample.node)
        pending = self.pending.setdefault(sample.node, Counter())
        start = sample.start_s
        if state is not None and sample.t_s <= state.t_s:
            return  # an old sample (out of order): nothing new
        if state is None or self._restarted(state, sample):
            restarts = 0 if state is None else state.restarts + 1
            if start is not None and (state is not None or start >= self.started_s):
                # compared from its start: every entry it wrote is counted here
                state = NodeState(sample.node, sample.service, start, start, restarts=restarts)
                for t in [t for t in pending if t < tick(start)]:
                    del pending[t]
            else:  # first seen, older than this process: compared from this sample on
                state = NodeState(
                    sample.node, sample.service, start or sample.t_s, sample.t_s,
                    sample.written, sample.written,
                )  # fmt: skip
                self.states[sample.node] = state
                self._take(pending, tick(sample.t_s))
                return
            self.states[sample.node] = state
        state.service = sample.service or state.service
        state.received += self._take(pending, tick(sample.t_s))
        state.written = sample.written
        d = state.written - state.received
        missing = d - state.high
        if missing > 0:
            gap = Gap(sample.node, state.service, state.t_s, sample.t_s, missing)
            self.new_gaps.append(gap)
            self.recent[sample.node] = gap
            log.warning(
                "telemetry: %s wrote %d access-log entries that never arrived (%.0f..%.0f)",
                sample.node, missing, state.t_s, sample.t_s,
            )  # fmt: skip
        state.high = max(state.high, d)
        state.t_s = sample.t_s

    @staticmethod
    def _restarted(state: NodeState, sample: Sample) -> bool:
        start = sample.start_s
        if sample.written < state.written:
            return True
        return start is not None and start > state.start_s + RESTART_SLACK_S

    @staticmethod
    def _take(pending: Counter[int], bound: int) -> int:
        taken = [t for t in pending if t <= bound]
        return sum(pending.pop(t) for t in taken)

    def _forget_unsampled(self, now: float) -> None:
        oldest = tick(now - UNSAMPLED_KEEP_S)
        for node, pending in self.pending.items():
            if node in self.states:
                continue
            for t in [t for t in pending if t < oldest]:
                self.unattributed += pending.pop(t)

    # -- persistence -------------------------------------------------------------------

    def take_gaps(self) -> list[Gap]:
        out, self.new_gaps = self.new_gaps, []
        return out

    def snapshot(self) -> list[tuple[NodeState, int]]:
        """Each node's state and its entries received after it (written at every flush)."""
        return [
            (state, sum(self.pending.get(node, Counter()).values()))
            for node, state in self.states.items()
        ]

    def restore(self, saved: Iterable[tuple[NodeState, int]]) -> None:
        """States written by a previous process; its entries after each are one tick on."""
        for state, after in saved:
            self.states[state.node] = state
            if after:
                self.pending[state.node] = Counter({tick(state.t_s) + 1: after})

    def nodes_json(self) -> dict[str, dict[str, Any]]:
        return {
            node: {
                "service": s.service,
                "written": s.written,
                "received": s.received,
                "outstanding": s.outstanding(),
                "lastSample": round(s.t_s, 3),
                "envoyStart": round(s.start_s, 3),
                "envoyRestarts": s.restarts,
            }
            for node, s in sorted(self.states.items())
        }


@dataclass
class MetricsStats:
    exports: int = 0
    refused: int = 0
    unnamed: int = 0
    by_node: dict[str, int] = field(default_factory=dict)


class MetricsServicer(metrics_service_pb2_grpc.MetricsServiceServicer):  # type: ignore[misc]
    """``opentelemetry.proto.collector.metrics.v1.MetricsService/Export``: each proxy's
    counters into the ``Reconciler``, its request stats into ``requests``
    (``telemetry.stats_records``); other metrics are ignored."""

    def __init__(self, reconciler: Reconciler, requests: RequestStats | None = None) -> None:
        self.reconciler = reconciler
        self.requests = requests
        self.stats = MetricsStats()

    async def Export(  # the protocol's name
        self,
        request: metrics_service_pb2.ExportMetricsServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self.stats.exports += 1
        for resource_metrics in request.resource_metrics:
            if self.requests is not None:
                self.requests.export(resource_metrics)
            sample = sample_of(resource_metrics)
            if sample is None:
                self.stats.unnamed += 1
                continue
            self.stats.by_node[sample.node] = self.stats.by_node.get(sample.node, 0) + 1
            self.reconciler.sampled(sample)
        return metrics_service_pb2.ExportMetricsServiceResponse()
