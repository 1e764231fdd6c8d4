"""``HostPresence``: the liveness rule (``gossamer.registry.liveness``) applied to agents'
hosts in a running control plane.

It hears agents' heartbeats (from the registry) and their hosts' ADS streams opening and
closing (from the xDS monitor), all in memory; its ``run`` task wakes when the next host
could die or when a dead host shows life, and tells the control plane which hosts are
unreachable (their endpoints are then published unhealthy). The clocks start when ``run``
starts, after the control plane loaded its state.

With several replicas (``shared``, e.g. ``store.etcd_presence.EtcdPresence``) each publishes
the hosts it judges alive, and a host is dead only when this replica judges it dead and no
other replica judges it alive: its agent may call one replica while its Envoys stream to
another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Literal, Protocol

from gossamer.controlplane.plane import ControlPlane
from gossamer.registry.liveness import Liveness, LivenessSettings

log = logging.getLogger(__name__)

#: past a deadline by this much before judging, so float rounding cannot spin the loop
_MARGIN = 0.001


class SharedPresence(Protocol):
    """What the other replicas judge (``store.etcd_presence.EtcdPresence``)."""

    #: called when the other replicas' judgements change
    on_change: Callable[[], None]

    def publish(self, alive: Iterable[str]) -> None:
        """The hosts this replica judges alive now."""

    def alive_elsewhere(self) -> frozenset[str]:
        """The hosts some other replica judges alive."""
        ...


class HostPresence:
    def __init__(
        self,
        plane: ControlPlane,
        hosts: Callable[[], Iterable[str]],
        settings: LivenessSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        shared: SharedPresence | None = None,
    ) -> None:
        """``hosts`` lists the hosts the rule applies to (those with an active agent);
        ``shared``: the other replicas' judgements."""
        self.rule = Liveness(settings)
        self._plane = plane
        self._hosts = hosts
        self._clock = clock
        self._news = asyncio.Event()
        #: the other replicas' judgements (None: this replica alone)
        self.shared = shared
        if shared is not None:
            shared.on_change = self._news.set
        #: the hosts judged dead at the last evaluation
        self.dead: frozenset[str] = frozenset()
        plane.monitor.on_host_streams(self._stream)

    @property
    def settings(self) -> LivenessSettings:
        return self.rule.settings

    # -- facts -------------------------------------------------------------------------------

    def heartbeat(self, host: str) -> None:
        """The agent of ``host`` called the control plane."""
        known = self.rule.knows(host)
        self.rule.heartbeat(host, self._clock())
        if host in self.dead or not known:
            self._news.set()  # back to life, or a new host whose death must be scheduled

    def changed(self) -> None:
        """The set of hosts changed (an agent joined or was revoked): judge again."""
        self._news.set()

    def _stream(self, host: str, opened: bool) -> None:
        if opened:
            self.rule.stream_opened(host)
            if host in self.dead:
                self._news.set()
            return
        self.rule.stream_closed(host, self._clock())
        if self.rule.streams(host) > 0:
            return
        if host in set(self._hosts()):
            self._news.set()  # its death can now be scheduled
        else:
            # no agent there: nothing to judge, and nothing to remember once its streams left
            self.rule.forget(host)

    # -- judging -----------------------------------------------------------------------------

    def status(self, host: str) -> Literal["active", "unreachable"]:
        """``unreachable`` if ``host`` is dead by the rule, else ``active``."""
        return "unreachable" if host in self.dead else "active"

    def evaluate(self) -> float | None:
        """Judge every host now; publish a change; return when to judge again (monotonic)."""
        now = self._clock()
        hosts = set(self._hosts())
        dead = self.rule.dead(hosts, now)
        if self.shared is not None:
            self.shared.publish(hosts - dead)
            dead -= self.shared.alive_elsewhere()
        if dead != self.dead:
            for host in sorted(dead - self.dead):
                log.warning(
                    "host %s is unreachable: no heartbeat from its agent for %g s and no xDS "
                    "stream from its proxies for %g s%s; its endpoints are marked unhealthy",
                    host,
                    self.settings.agent_deadline,
                    self.settings.stream_grace,
                    "" if self.shared is None else " (at any replica)",
                )
            for host in sorted(self.dead - dead):
                log.info("host %s is reachable again; its endpoints are healthy again", host)
            self.dead = dead
            self._plane.set_unreachable(dead)
        return self.rule.next_death(hosts, now)

    async def run(self) -> None:
        """Start the clocks and judge until cancelled."""
        self.rule.start(self._clock())
        while True:
            self._news.clear()
            wake = self.evaluate()
            timeout = None if wake is None else max(0.0, wake - self._clock()) + _MARGIN
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._news.wait()
