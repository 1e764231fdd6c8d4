"""The liveness rule, on a hand-moved clock: dead only when the agent is silent AND the
host's streams are gone, never before the clocks start, alive again at any sign of life."""

from __future__ import annotations

import math

import pytest

from gossamer.errors import ConfigError
from gossamer.registry.liveness import Liveness, LivenessSettings

#: silent after 3 missed heartbeats of 10 s; streams gone after 20 s
SETTINGS = LivenessSettings(heartbeat_interval=10, missed_heartbeats=3, stream_grace=20)
T0 = 1000.0


def started() -> Liveness:
    rule = Liveness(SETTINGS)
    rule.start(T0)
    return rule


def test_nothing_is_dead_before_the_clocks_start() -> None:
    rule = Liveness(SETTINGS)
    rule.heartbeat("vm-1", 0)
    assert rule.alive("vm-1", 10_000)
    assert rule.dead(["vm-1", "vm-2"], 10_000) == frozenset()
    assert rule.next_death(["vm-1"], 10_000) is None


def test_a_restarted_observer_waits_the_full_deadline_from_its_start() -> None:
    rule = started()
    # heard of before the restart or never: both get the whole deadline from start
    assert rule.alive("vm-1", T0 + 29.9)
    assert not rule.alive("vm-1", T0 + 30)
    assert rule.next_death(["vm-1"], T0) == T0 + 30


def test_silent_agent_and_no_stream_is_dead() -> None:
    rule = started()
    rule.heartbeat("vm-1", T0 + 5)
    rule.stream_opened("vm-1")
    rule.stream_closed("vm-1", T0 + 6)
    assert rule.dies_at("vm-1") == max(T0 + 5 + 30, T0 + 6 + 20)
    assert rule.alive("vm-1", T0 + 34.9)
    assert rule.dead(["vm-1"], T0 + 35) == {"vm-1"}


def test_an_open_stream_keeps_a_silent_agents_host_alive() -> None:
    """An agent upgrade: the agent is gone for long, its Envoys keep their streams."""
    rule = started()
    rule.heartbeat("vm-1", T0)
    rule.stream_opened("vm-1")
    assert rule.alive("vm-1", T0 + 1e6)
    assert rule.dies_at("vm-1") == math.inf
    assert rule.next_death(["vm-1"], T0 + 1e6) is None


def test_heartbeats_keep_a_host_without_streams_alive() -> None:
    """An Envoy restart (or a host whose workloads have no sidecar): the agent is there."""
    rule = started()
    for i in range(100):
        rule.heartbeat("vm-1", T0 + i * 10)
        assert rule.alive("vm-1", T0 + i * 10 + 29)
    assert not rule.alive("vm-1", T0 + 99 * 10 + 30)


def test_a_stream_gone_only_briefly_is_not_death() -> None:
    rule = started()
    rule.stream_opened("vm-1")
    rule.stream_closed("vm-1", T0 + 100)
    assert rule.alive("vm-1", T0 + 119)  # agent long silent, but the stream left 19 s ago
    assert not rule.alive("vm-1", T0 + 120)


def test_every_stream_of_the_host_must_be_gone() -> None:
    rule = started()
    rule.stream_opened("vm-1")
    rule.stream_opened("vm-1")
    rule.stream_closed("vm-1", T0 + 1)
    assert rule.alive("vm-1", T0 + 1000)
    rule.stream_closed("vm-1", T0 + 1000)
    assert rule.dies_at("vm-1") == T0 + 1020


def test_a_dead_host_is_alive_at_its_next_heartbeat_or_stream() -> None:
    rule = started()
    assert not rule.alive("vm-1", T0 + 100)
    rule.heartbeat("vm-1", T0 + 100)
    assert rule.alive("vm-1", T0 + 100)
    assert not rule.alive("vm-1", T0 + 130)
    rule.stream_opened("vm-1")
    assert rule.alive("vm-1", T0 + 130)


def test_hosts_are_judged_apart_and_next_death_is_the_earliest() -> None:
    rule = started()
    rule.heartbeat("vm-1", T0 + 10)
    rule.heartbeat("vm-2", T0 + 20)
    rule.stream_opened("vm-3")
    hosts = ["vm-1", "vm-2", "vm-3"]
    assert rule.next_death(hosts, T0) == T0 + 40
    assert rule.dead(hosts, T0 + 40) == {"vm-1"}
    assert rule.next_death(hosts, T0 + 40) == T0 + 50
    assert rule.dead(hosts, T0 + 50) == {"vm-1", "vm-2"}
    assert rule.next_death(hosts, T0 + 50) is None


def test_start_is_once_and_forget_drops_a_host() -> None:
    rule = started()
    rule.start(T0 + 500)  # a second start does not move the clocks
    rule.stream_opened("vm-1")
    assert rule.knows("vm-1")
    rule.forget("vm-1")
    assert not rule.knows("vm-1")
    assert not rule.alive("vm-1", T0 + 30)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"heartbeat_interval": 0}, "--heartbeat-interval"),
        ({"missed_heartbeats": 0}, "--missed-heartbeats"),
        ({"stream_grace": -1}, "--stream-grace"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        LivenessSettings(**kwargs)  # type: ignore[arg-type]
