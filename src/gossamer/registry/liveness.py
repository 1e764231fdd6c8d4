"""The liveness rule: when is a host dead? Plain and I/O-free; times are passed in.

A host is **dead** only when both of these hold (docs/agent-protocol.md, "The liveness
rule"):

- its agent has missed ``missed_heartbeats`` heartbeats: nothing from it for
  ``missed_heartbeats * heartbeat_interval`` seconds, and
- none of its proxies has had an ADS stream open for ``stream_grace`` seconds.

So an agent upgrade (the agent is gone for a while, its Envoys keep their streams) and an
Envoy restart (its stream is gone for a moment, the agent keeps heartbeating) are not deaths.
Nothing is dead before ``start``: the clocks start when the observer is ready, so a restart
of whoever applies the rule declares no host dead. A dead host is alive again at its next
heartbeat or stream.

Hosts are plain strings; the same rule serves agents' hosts here and other members later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from gossamer.errors import ConfigError


@dataclass(frozen=True, slots=True)
class LivenessSettings:
    """How long silence lasts before a host is dead (seconds)."""

    #: how often agents heartbeat (the agent sends at least this often; see docs/agent.md)
    heartbeat_interval: float = 15.0
    #: heartbeats an agent may miss before it counts as silent
    missed_heartbeats: int = 3
    #: how long none of a host's proxies may have an ADS stream before they count as gone
    stream_grace: float = 30.0

    def __post_init__(self) -> None:
        if not self.heartbeat_interval > 0:
            raise ConfigError(
                f"--heartbeat-interval must be > 0 s (e.g. 15), got {self.heartbeat_interval:g}"
            )
        if self.missed_heartbeats < 1:
            raise ConfigError(
                f"--missed-heartbeats must be >= 1 (e.g. 3), got {self.missed_heartbeats}"
            )
        if not self.stream_grace >= 0:
            raise ConfigError(f"--stream-grace must be >= 0 s (e.g. 30), got {self.stream_grace:g}")

    @property
    def agent_deadline(self) -> float:
        """Seconds without a heartbeat after which an agent is silent."""
        return self.heartbeat_interval * self.missed_heartbeats


@dataclass(slots=True)
class _Host:
    heartbeat: float | None = None
    streams: int = 0
    #: when its last stream closed (None: no stream seen since start)
    streams_gone: float | None = None


class Liveness:
    """The liveness rule over facts it is told: heartbeats, streams opening and closing."""

    def __init__(self, settings: LivenessSettings | None = None) -> None:
        self.settings = settings or LivenessSettings()
        self._started: float | None = None
        self._hosts: dict[str, _Host] = {}

    # -- facts -------------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Start the clocks (the observer is ready); until then every host is alive."""
        if self._started is None:
            self._started = now

    @property
    def started(self) -> bool:
        return self._started is not None

    def heartbeat(self, host: str, now: float) -> None:
        self._host(host).heartbeat = now

    def stream_opened(self, host: str) -> None:
        self._host(host).streams += 1

    def stream_closed(self, host: str, now: float) -> None:
        h = self._host(host)
        h.streams = max(0, h.streams - 1)
        if h.streams == 0:
            h.streams_gone = now

    def forget(self, host: str) -> None:
        """Drop what is known of ``host`` (e.g. its agent was revoked)."""
        self._hosts.pop(host, None)

    def knows(self, host: str) -> bool:
        return host in self._hosts

    def last_heartbeat(self, host: str) -> float | None:
        found = self._hosts.get(host)
        return found.heartbeat if found else None

    def streams(self, host: str) -> int:
        """How many streams of ``host`` are open."""
        found = self._hosts.get(host)
        return found.streams if found else 0

    def _host(self, host: str) -> _Host:
        found = self._hosts.get(host)
        if found is None:
            found = self._hosts[host] = _Host()
        return found

    # -- the rule ----------------------------------------------------------------------------

    def dies_at(self, host: str) -> float:
        """When ``host`` is dead if nothing more is heard of it (inf: not while a stream is
        open, nor before ``start``)."""
        if self._started is None:
            return math.inf
        h = self._hosts.get(host) or _Host()
        if h.streams > 0:
            return math.inf
        silent = max(self._started, h.heartbeat or -math.inf) + self.settings.agent_deadline
        gone = max(self._started, h.streams_gone or -math.inf) + self.settings.stream_grace
        return max(silent, gone)

    def alive(self, host: str, now: float) -> bool:
        return now < self.dies_at(host)

    def dead(self, hosts: Iterable[str], now: float) -> frozenset[str]:
        """The ``hosts`` that are dead at ``now``."""
        return frozenset(h for h in hosts if not self.alive(h, now))

    def next_death(self, hosts: Iterable[str], now: float) -> float | None:
        """The earliest time after ``now`` one of the live ``hosts`` dies (None: never
        without news)."""
        times = [t for h in hosts if now < (t := self.dies_at(h)) < math.inf]
        return min(times, default=None)
