"""Which traces are stored: storage-only, tail-based sampling.

Envoy samples at the edge (``Mesh.spec.tracing.sampling``); of what reaches the service,
a trace is decided once it has been quiet for ``decision_wait_s`` (its spans come from
several proxies, each exporting in its own batches), then kept whole when

- any span failed (5xx, no response, Envoy's ``error`` tag or an OTLP error status), or
- it is slow: its duration is at least ``slow_ms``, or, with ``slow_ms`` None ("auto"),
  at least the p99 of its root service's recent traces (once 100 of them were seen), or
- its trace id falls in the kept fraction ``keep`` (the low 32 bits of the random W3C
  trace id, so every replica and every batch decide the same).

A span arriving after its trace was decided follows the decision, except that a failed or
slow one is stored even if the rest was dropped (a partial trace beats none). Memory is
bounded: past ``max_pending`` traces the oldest are decided early.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ddsketch import DDSketch

from gossamer.telemetry.traces import Span

#: traces seen per service before "auto" slow has a p99 to go by
AUTO_SLOW_MIN_TRACES = 100
#: how long an auto threshold's window of durations lasts (the previous one is merged in)
AUTO_SLOW_WINDOW_S = 600.0
#: decisions remembered for late spans
_MAX_DECIDED = 200_000


@dataclass
class SamplingStats:
    spans_received: int = 0
    spans_stored: int = 0
    spans_dropped: int = 0
    traces_decided: int = 0
    kept_error: int = 0
    kept_slow: int = 0
    kept_sampled: int = 0
    dropped: int = 0

    def as_json(self) -> dict[str, int]:
        return {
            "spansReceived": self.spans_received,
            "spansStored": self.spans_stored,
            "spansDropped": self.spans_dropped,
            "tracesDecided": self.traces_decided,
            "tracesKeptError": self.kept_error,
            "tracesKeptSlow": self.kept_slow,
            "tracesKeptSampled": self.kept_sampled,
            "tracesDropped": self.dropped,
        }


class SlowThreshold:
    """Per root service, the p99 of recent trace durations (two rotating windows)."""

    def __init__(self, window_s: float = AUTO_SLOW_WINDOW_S) -> None:
        self.window_s = window_s
        self._current: dict[str, DDSketch] = {}
        self._previous: dict[str, DDSketch] = {}
        self._started = -1.0

    def _rotate(self, now: float) -> None:
        if self._started < 0:
            self._started = now
        elif now - self._started >= self.window_s:
            self._previous, self._current = self._current, {}
            self._started = now

    def threshold_ms(self, service: str, now: float) -> float | None:
        self._rotate(now)
        sketches = [s for s in (self._current.get(service), self._previous.get(service)) if s]
        count = sum(s.count for s in sketches)
        if count < AUTO_SLOW_MIN_TRACES:
            return None
        merged = DDSketch(0.01)
        for s in sketches:
            merged.merge(s)
        value = merged.get_quantile_value(0.99)
        return None if value is None else float(value)

    def add(self, service: str, duration_ms: float) -> None:
        sketch = self._current.get(service)
        if sketch is None:
            sketch = self._current[service] = DDSketch(0.01)
        sketch.add(max(duration_ms, 1e-3))


def kept_by_fraction(trace_id: str, keep: float) -> bool:
    """Whether ``trace_id`` is in the kept fraction (its low 32 bits, uniformly random)."""
    if keep >= 1.0:
        return True
    return int(trace_id[-8:], 16) < keep * 0x1_0000_0000


@dataclass
class _Pending:
    spans: list[Span] = field(default_factory=list)
    last_seen: float = 0.0


def _root(spans: list[Span]) -> Span:
    """The span whose parent is not in the trace, earliest first (the edge's)."""
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_id not in ids] or spans
    return min(roots, key=lambda s: s.start_ns)


def trace_duration_ms(spans: list[Span]) -> float:
    return (max(s.end_ns for s in spans) - min(s.start_ns for s in spans)) / 1e6


class TraceSampler:
    """``add`` spans as they arrive; ``settle`` returns the spans to store."""

    def __init__(
        self,
        keep: float = 0.1,
        slow_ms: float | None = None,
        decision_wait_s: float = 10.0,
        max_pending: int = 50_000,
    ) -> None:
        self.keep = keep
        self.slow_ms = slow_ms
        self.decision_wait_s = decision_wait_s
        self.max_pending = max_pending
        self.auto_slow = SlowThreshold()
        self.stats = SamplingStats()
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._decided: OrderedDict[str, bool] = OrderedDict()
        self._late: list[Span] = []
        self._now = 0.0

    def add(self, spans: Iterable[Span], now: float) -> None:
        self._now = now
        pending = self._pending
        decided = self._decided
        for span in spans:
            self.stats.spans_received += 1
            kept = decided.get(span.trace_id)
            if kept is not None:
                if kept or span.error or self._slow(span.service, span.duration_ns / 1e6, now):
                    self._late.append(span)
                else:
                    self.stats.spans_dropped += 1
                continue
            entry = pending.get(span.trace_id)
            if entry is None:
                entry = pending[span.trace_id] = _Pending()
            else:
                pending.move_to_end(span.trace_id)
            entry.spans.append(span)
            entry.last_seen = now

    def _slow(self, service: str, duration_ms: float, now: float) -> bool:
        if self.slow_ms is not None:
            return duration_ms >= self.slow_ms
        threshold = self.auto_slow.threshold_ms(service, now)
        return threshold is not None and duration_ms >= threshold

    def _decide(self, trace_id: str, spans: list[Span], now: float) -> bool:
        root = _root(spans)
        duration = trace_duration_ms(spans)
        stats = self.stats
        stats.traces_decided += 1
        if any(s.error for s in spans):
            stats.kept_error += 1
            kept = True
        elif self._slow(root.service, duration, now):
            stats.kept_slow += 1
            kept = True
        elif kept_by_fraction(trace_id, self.keep):
            stats.kept_sampled += 1
            kept = True
        else:
            stats.dropped += 1
            kept = False
        if self.slow_ms is None:
            self.auto_slow.add(root.service, duration)
        self._decided[trace_id] = kept
        while len(self._decided) > _MAX_DECIDED:
            self._decided.popitem(last=False)
        return kept

    def settle(self, now: float, everything: bool = False) -> list[Span]:
        """Decide the traces quiet for ``decision_wait_s`` (all with ``everything``, and the
        oldest past ``max_pending``); the spans to store."""
        out, self._late = self._late, []
        pending = self._pending
        quiet_before = now - self.decision_wait_s
        while pending:
            trace_id, entry = next(iter(pending.items()))
            overfull = len(pending) > self.max_pending
            if not (everything or overfull or entry.last_seen <= quiet_before):
                break  # ordered by last span seen: the rest are newer
            del pending[trace_id]
            if self._decide(trace_id, entry.spans, now):
                out.extend(entry.spans)
            else:
                self.stats.spans_dropped += len(entry.spans)
        self.stats.spans_stored += len(out)
        return out

    @property
    def pending_traces(self) -> int:
        return len(self._pending)
