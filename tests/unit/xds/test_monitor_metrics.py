"""The monitor's operator metrics: push latency per type, proxies out of sync and NACKing,
queue depth (responses in flight), and the summary read back from the registry. A plain
``XdsMonitor`` fed the events a stream reports, driven by a scripted Envoy."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from xds_fakes import C, E, FakeEnvoy, L, R, mesh, resources

from gossamer.types import ProxyIdentity
from gossamer.xds.metrics import quantile, summary_of
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import StreamState

WEB = ProxyIdentity("sidecar", "default", "web-1")
API = ProxyIdentity("sidecar", "default", "api-1")
TYPES = ("clusters", "endpoints", "listeners", "routes")


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    found = reg.get_sample_value(name, labels)
    return 0.0 if found is None else found


def push_counts(reg: CollectorRegistry) -> dict[str, float]:
    return {
        t: value(reg, "gossamer_xds_push_latency_seconds_count", type=t)
        for t in (*TYPES, "extension_configs")
    }


def gauges(reg: CollectorRegistry) -> tuple[float, float, float]:
    return (
        value(reg, "gossamer_xds_proxies_out_of_sync"),
        value(reg, "gossamer_xds_proxies_nacking"),
        value(reg, "gossamer_xds_queue_depth"),
    )


def drive(monitor: XdsMonitor, key: str, env: FakeEnvoy, snap: Snapshot) -> None:
    """Push and ACK until nothing is left, telling the monitor as a stream would (Envoy
    asks for endpoints after clusters and routes after listeners)."""
    for _ in range(20):
        out = env.push(snap)
        if out is None:
            return
        monitor.sent(key, out)
        if out.type is C:
            monitor.request(key, env.request(E, sorted(snap.of(E)), nonce=""))
        monitor.request(key, env.ack(out))
        if out.type is L:
            monitor.request(key, env.request(R, sorted(snap.of(R)), nonce=""))
    raise AssertionError("still pushing after 20 responses")


def start(monitor: XdsMonitor, key: str, proxy: ProxyIdentity, snap: Snapshot) -> FakeEnvoy:
    env = FakeEnvoy(delta=False)
    monitor.opened(key, proxy, env.state, "sotw", None)
    monitor.request(key, env.request(C, snap=snap))
    monitor.request(key, env.request(L, snap=snap))
    monitor.snapshot(key, snap)
    return env


def test_push_latency_is_measured_per_type_from_the_change_to_that_types_ack() -> None:
    reg = CollectorRegistry()
    monitor = XdsMonitor(reg)
    first = replace(mesh(2), created=time.monotonic() - 0.5)
    env = start(monitor, "s1", WEB, first)
    drive(monitor, "s1", env, first)
    assert push_counts(reg) == {**dict.fromkeys(TYPES, 1.0), "extension_configs": 0.0}
    assert value(reg, "gossamer_xds_push_latency_seconds_sum", type="routes") >= 0.5
    assert value(reg, "gossamer_xds_sync_latency_seconds_count") == 1

    # one endpoint set changes: only endpoints are pushed, so only they are measured
    second = Snapshot.build(
        resources({"c1": 1, "c2": 1}, {"c1": 2, "c2": 1}, {"l1": 1, "l2": 1}, {"r1": 1, "r2": 1}),
        Serializer(),
        created=time.monotonic(),
        previous=first,
    )
    monitor.snapshot("s1", second)
    drive(monitor, "s1", env, second)
    assert push_counts(reg) == {
        **dict.fromkeys(TYPES, 1.0),
        "endpoints": 2.0,
        "extension_configs": 0.0,
    }
    assert value(reg, "gossamer_xds_sync_latency_seconds_count") == 2
    # the same snapshot again (a request that changes nothing) measures nothing more
    monitor.request("s1", env.request(R, sorted(second.of(R))))
    assert value(reg, "gossamer_xds_push_latency_seconds_count", type="endpoints") == 2
    monitor.close()


def test_out_of_sync_nacking_and_queue_depth_follow_the_stream() -> None:
    reg = CollectorRegistry()
    monitor = XdsMonitor(reg)
    env = FakeEnvoy(delta=False)
    monitor.opened("s1", WEB, env.state, "sotw", None)
    # connected, no config built for it yet: not in sync
    assert gauges(reg) == (1, 0, 0)

    bad = mesh(1)
    monitor.request("s1", env.request(C, snap=bad))
    monitor.snapshot("s1", bad)
    out = env.push(bad)
    assert out is not None and out.type is C
    monitor.sent("s1", out)
    assert gauges(reg) == (1, 0, 1)  # the clusters response is in flight
    monitor.request("s1", env.nack(out, "bad cluster c1"))
    assert gauges(reg) == (1, 1, 0)

    fixed = mesh(1, rev=2)
    monitor.snapshot("s1", fixed)
    drive(monitor, "s1", env, fixed)
    assert gauges(reg) == (0, 0, 0)
    summary = summary_of(reg)
    assert (summary.connected, summary.in_sync, summary.out_of_sync) == (1, 1, 0)

    monitor.closed("s1")
    assert gauges(reg) == (0, 0, 0)
    monitor.close()


def test_a_subscription_to_a_new_name_puts_the_proxy_out_of_sync_until_acked() -> None:
    """The gauge's flag follows every request, not only ACKs and NACKs: a proxy asking for
    a route it does not hold yet is behind before anything is sent."""
    reg = CollectorRegistry()
    monitor = XdsMonitor(reg)
    snap = mesh(2)
    env = start(monitor, "s1", WEB, snap)
    drive(monitor, "s1", env, snap)
    # Envoy drops r2 and asks for it again (a listener rebuilt): it must be sent again
    monitor.request("s1", env.request(R, ["r1"]))
    assert gauges(reg)[0] == 0
    monitor.request("s1", env.request(R, ["r1", "r2"]))
    assert gauges(reg)[0] == 1
    assert [p.synced for p in monitor.statuses()] == [False]
    drive(monitor, "s1", env, snap)
    assert gauges(reg)[0] == 0
    assert [p.synced for p in monitor.statuses()] == [True]
    monitor.close()


def test_a_scrape_reads_flags_and_checks_no_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """At 1,000 proxies a scrape must not ask every stream's state what it still needs."""
    reg = CollectorRegistry()
    monitor = XdsMonitor(reg)
    for i in range(50):
        proxy = ProxyIdentity("sidecar", "default", f"w-{i}")
        snap = mesh(1)
        env = start(monitor, f"s{i}", proxy, snap)
        if i % 2:
            drive(monitor, f"s{i}", env, snap)

    def refuse(self: StreamState, snap: Snapshot) -> bool:
        raise AssertionError("a scrape asked a stream's state whether it is in sync")

    monkeypatch.setattr(StreamState, "in_sync", refuse)
    monkeypatch.setattr(StreamState, "type_in_sync", refuse)
    text = generate_latest(reg).decode()
    assert "gossamer_xds_proxies_out_of_sync 25.0" in text
    assert summary_of(reg).out_of_sync == 25
    monitor.close()


def test_of_two_streams_of_one_node_only_the_newest_counts() -> None:
    reg = CollectorRegistry()
    monitor = XdsMonitor(reg)
    snap = mesh(1)
    old = start(monitor, "s1", API, snap)
    drive(monitor, "s1", old, snap)
    start(monitor, "s2", API, snap)  # reconnected; the old stream has not closed yet
    assert gauges(reg)[0] == 1
    assert summary_of(reg).connected == 1
    monitor.closed("s1")
    monitor.closed("s2")
    monitor.close()


def test_quantile_interpolates_within_a_bucket_as_promql_does() -> None:
    buckets = [(0.01, 0.0), (0.1, 10.0), (1.0, 20.0), (float("inf"), 20.0)]
    assert quantile(buckets, 0.5) == pytest.approx(0.1)
    assert quantile(buckets, 0.25) == pytest.approx(0.055)
    assert quantile(buckets, 0.99) == pytest.approx(0.1 + 0.9 * 9.8 / 10)
    assert quantile([(0.1, 1.0), (float("inf"), 4.0)], 0.99) == 0.1  # in +Inf: the last bound
    assert quantile([(0.1, 0.0), (float("inf"), 0.0)], 0.5) is None
    assert quantile([], 0.5) is None


def test_the_summary_lists_every_type_then_all() -> None:
    reg = CollectorRegistry()
    monitor = XdsMonitor(reg)
    snap = replace(mesh(1), created=time.monotonic())
    drive(monitor, "s1", start(monitor, "s1", WEB, snap), snap)
    summary = summary_of(reg)
    rows = {row.type: row for row in summary.latency}
    assert list(rows) == [
        "clusters",
        "endpoints",
        "listeners",
        "extension_configs",
        "routes",
        "all",
    ]
    assert rows["clusters"].count == 1 and rows["clusters"].p50 is not None
    assert rows["extension_configs"].count == 0 and rows["extension_configs"].p99 is None
    assert rows["all"].count == 1
    monitor.close()
