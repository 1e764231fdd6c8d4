"""Loss reconciliation: Envoy's logs_written (+ dropped) against entries received by
the time their proxy wrote them; samples compared after a grace; Envoy and service
restarts; no gap flagged when nothing was lost."""

from __future__ import annotations

from opentelemetry.proto.metrics.v1 import metrics_pb2

from gossamer.telemetry.stat_sink import GRACE_S, Reconciler, Sample, sample_of, tick
from gossamer.translate.stat_sink import LOGS_DROPPED, LOGS_WRITTEN, NODE_ATTRIBUTE, UPTIME

NODE = "sidecar~default~web-1"
ENVOY_START = 1_800_000_000.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def sample(t: float, written: int, start: float = ENVOY_START) -> Sample:
    return Sample(NODE, "default/web", t, written, float(int(t - start)))


def feed(r: Reconciler, *times: float) -> None:
    r.received(NODE, [tick(t) for t in times])


def compare(r: Reconciler, clock: Clock, s: Sample) -> None:
    r.sampled(s)
    clock.now += GRACE_S
    r.settle()


def started_before_envoy() -> tuple[Reconciler, Clock]:
    clock = Clock(ENVOY_START - 100)
    return Reconciler(clock), clock


def test_every_entry_received_flags_no_gap() -> None:
    r, clock = started_before_envoy()
    clock.now = ENVOY_START + 20
    feed(r, *(ENVOY_START + 1 + i * 0.5 for i in range(20)))  # written 1..10.5 s
    compare(r, clock, sample(ENVOY_START + 10.05, 19))  # the 20th is after the sample
    feed(r, *(ENVOY_START + 12 + i for i in range(5)))
    compare(r, clock, sample(ENVOY_START + 20, 25))
    assert r.take_gaps() == []
    state = r.states[NODE]
    assert (state.written, state.received, state.outstanding()) == (25, 25, 0)


def test_entries_written_but_never_received_are_flagged_on_their_interval() -> None:
    r, clock = started_before_envoy()
    clock.now = ENVOY_START + 30
    feed(r, *(ENVOY_START + 1 + i for i in range(7)))  # 7 of 10 arrived
    compare(r, clock, sample(ENVOY_START + 10, 10))
    [gap] = r.take_gaps()
    assert (gap.missing, gap.from_s, gap.to_s) == (3, ENVOY_START - 1, ENVOY_START + 10)
    feed(r, ENVOY_START + 15)
    compare(r, clock, sample(ENVOY_START + 20, 11))
    assert r.take_gaps() == []  # flagged once


def test_an_entry_counted_one_tick_early_flags_nothing() -> None:
    r, clock = started_before_envoy()
    clock.now = ENVOY_START + 30
    # written in the sample's own tick but after its snapshot: not in logs_written yet
    feed(r, ENVOY_START + 5, ENVOY_START + 10.01)
    compare(r, clock, sample(ENVOY_START + 10.0, 1))
    compare(r, clock, sample(ENVOY_START + 20.0, 2))
    assert r.take_gaps() == []


def test_a_late_entry_lowers_the_gap_it_was_counted_in() -> None:
    r, clock = started_before_envoy()
    clock.now = ENVOY_START + 30
    feed(r, ENVOY_START + 1)
    compare(r, clock, sample(ENVOY_START + 10, 3))
    [gap] = r.take_gaps()
    assert gap.missing == 2
    feed(r, ENVOY_START + 9)  # arrives after its interval was compared
    assert (gap.missing, r.late, r.states[NODE].outstanding()) == (1, 1, 1)


def test_an_envoy_restart_starts_its_counters_again_without_a_false_gap() -> None:
    r, clock = started_before_envoy()
    clock.now = ENVOY_START + 30
    feed(r, *(ENVOY_START + 1 + i for i in range(5)))
    compare(r, clock, sample(ENVOY_START + 10, 5))
    restarted = ENVOY_START + 60
    clock.now = restarted + 30
    feed(r, restarted + 2, restarted + 3)
    compare(r, clock, sample(restarted + 10, 2, start=restarted))
    assert r.take_gaps() == []
    assert r.states[NODE].restarts == 1
    feed(r, restarted + 12)
    compare(r, clock, sample(restarted + 20, 4, start=restarted))  # one lost after restart
    [gap] = r.take_gaps()
    assert gap.missing == 1


def test_a_node_older_than_the_service_is_compared_from_its_first_sample() -> None:
    clock = Clock(ENVOY_START + 1000)
    r = Reconciler(clock)
    compare(r, clock, sample(ENVOY_START + 1005, 500))  # all before we started: unknown
    feed(r, ENVOY_START + 1010)
    compare(r, clock, sample(ENVOY_START + 1015, 501))
    assert r.take_gaps() == []


def test_a_service_restart_shows_what_the_envoy_wrote_while_it_was_down() -> None:
    r, clock = started_before_envoy()
    clock.now = ENVOY_START + 30
    feed(r, *(ENVOY_START + 1 + i for i in range(10)))
    compare(r, clock, sample(ENVOY_START + 10, 10))
    feed(r, ENVOY_START + 11, ENVOY_START + 12)  # received after the sample, then stopped
    saved = r.snapshot()
    assert saved[0][1] == 2
    clock.now = ENVOY_START + 60  # 7 written while down (13..19), then 3 that arrived
    again = Reconciler(clock)
    again.restore(saved)
    feed(again, ENVOY_START + 50, ENVOY_START + 51, ENVOY_START + 52)
    compare(again, clock, sample(ENVOY_START + 55, 10 + 2 + 7 + 3))
    [gap] = again.take_gaps()
    assert (gap.missing, gap.from_s, gap.to_s) == (7, ENVOY_START + 10, ENVOY_START + 55)


def test_a_sample_is_compared_only_after_its_grace() -> None:
    r, clock = started_before_envoy()
    clock.now = ENVOY_START + 30
    r.sampled(sample(ENVOY_START + 10, 1))
    clock.now += GRACE_S - 0.5
    r.settle()
    assert r.states == {} and len(r.waiting) == 1
    feed(r, ENVOY_START + 5)  # was still in Envoy's buffer
    clock.now += 0.5
    r.settle()
    assert r.take_gaps() == [] and r.states[NODE].received == 1


def test_sample_of_reads_the_counters_and_uptime_of_one_proxy() -> None:
    rm = metrics_pb2.ResourceMetrics()
    attr = rm.resource.attributes.add(key=NODE_ATTRIBUTE)
    attr.value.string_value = NODE
    scope = rm.scope_metrics.add()
    for name, value, gauge in (
        (LOGS_WRITTEN, 40, False),
        (LOGS_DROPPED, 2, False),
        (UPTIME, 30, True),
    ):
        metric = scope.metrics.add(name=name)
        point = metric.gauge.data_points.add() if gauge else metric.sum.data_points.add()
        point.as_int = value
        point.time_unix_nano = int((ENVOY_START + 31) * 1e9)
    s = sample_of(rm)
    assert s is not None
    assert (s.node, s.written, s.t_s, s.start_s) == (NODE, 42, ENVOY_START + 31, ENVOY_START)
    assert sample_of(metrics_pb2.ResourceMetrics()) is None
