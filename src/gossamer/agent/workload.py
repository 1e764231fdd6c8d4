"""One workload on this host: keep its sidecar Envoy running (restart with back-off) and
health-check its app."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.agent.config import WorkloadConfig
from gossamer.agent.envoy import Sidecar, bootstrap_digest
from gossamer.agent.health import AppHealth, HealthTracker, probe
from gossamer.agent.policy_checks import EffectiveCheck, effective_check
from gossamer.agent.state import EnvoyRecord
from gossamer.agent.status import WorkloadStatus
from gossamer.envoy.supervisor import (
    Drain,
    DrainFailed,
    EnvoySupervisor,
    Event,
    Exited,
    Running,
    StartFailed,
)
from gossamer.polling import Backoff
from gossamer.ports import require_free

log = logging.getLogger(__name__)

#: an Envoy that ran this long before dying starts the restart back-off over
STABLE_AFTER_S = 30.0
#: the wait before restarting an Envoy that died or failed to start
ENVOY_RESTART = Backoff(initial=0.2, maximum=30.0)


@dataclass
class WorkloadRunner:
    config: WorkloadConfig
    address: str
    inbound_port: int
    bootstrap: bootstrap_pb2.Bootstrap
    workdir: Path
    envoy_binary: str
    drain_seconds: int
    status: WorkloadStatus
    #: called after any status change (the agent rewrites its status file)
    changed: Callable[[], None]
    #: called with the Envoy record after a (re)start; None once it is stopped
    recorded: Callable[[str, EnvoyRecord | None], None]
    supervisor: EnvoySupervisor[Sidecar] = field(init=False)
    #: the health check it runs now (``agent/policy_checks.py``: file, policy or default)
    check: EffectiveCheck = field(init=False)
    _tracker: HealthTracker | None = field(init=False, default=None)
    _check_changed: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.check = effective_check(self.config, None)
        self.status.health_check = self.check.to_json()
        self.supervisor = EnvoySupervisor(
            self.start_envoy,
            name=f"Envoy of {self.key}",
            backoff=ENVOY_RESTART,
            stable_after=STABLE_AFTER_S,
            on_event=self._envoy_event,
        )

    @property
    def key(self) -> str:
        return f"{self.config.namespace}/{self.config.name}"

    @property
    def service_key(self) -> str:
        """``NS/SERVICE``: the identity its Envoy serves (one per service on a host)."""
        return f"{self.config.namespace}/{self.config.service}"

    @property
    def digest(self) -> str:
        return bootstrap_digest(self.bootstrap)

    @property
    def sidecar(self) -> Sidecar | None:
        return self.supervisor.current

    def adopted(self, sidecar: Sidecar) -> None:
        self.supervisor.adopt(sidecar)
        self.status.envoy.state = "adopted"
        self.status.envoy.pid = sidecar.record.pid
        self.status.envoy.admin = sidecar.record.admin
        self.changed()

    # -- Envoy -------------------------------------------------------------------------

    async def start_envoy(self) -> Sidecar:
        require_free(self.address, self.inbound_port, f"inbound port of workload {self.key}")
        sidecar = await Sidecar.start(
            self.key,
            self.envoy_binary,
            self.bootstrap,
            self.workdir,
            drain_seconds=self.drain_seconds,
        )
        self.recorded(self.key, sidecar.record)
        log.info(
            "%s: started Envoy pid %d (admin %s)",
            self.key,
            sidecar.record.pid,
            sidecar.record.admin,
        )
        return sidecar

    async def supervise(self) -> None:
        """Keep the Envoy running until cancelled (restarting a dead one with back-off, for
        ever: the agent never gives up on a workload); it is left running."""
        await self.supervisor.run()

    def _envoy_event(self, event: Event[Sidecar]) -> None:
        envoy = self.status.envoy
        match event:
            case Running(sidecar, adopted):
                if not adopted:
                    envoy.state = "running"
                envoy.pid, envoy.admin = sidecar.record.pid, sidecar.record.admin
                envoy.retry_in = None
            case StartFailed(error, _, retry_in):
                log.warning("%s: %s (retrying in %.1f s)", self.key, error, retry_in or 0.0)
                envoy.state, envoy.error = "failed", str(error)
                envoy.retry_in = None if retry_in is None else round(retry_in, 2)
            case Exited(sidecar, _, retry_in):
                envoy.restarts += 1
                envoy.state = "restarting"
                envoy.error = (
                    f"Envoy (pid {sidecar.record.pid}) exited; see {self.workdir}/envoy.log"
                )
                envoy.retry_in = round(retry_in, 2)
                log.warning("%s: %s; restarting in %.1f s", self.key, envoy.error, retry_in)
            case DrainFailed(error):
                log.warning("%s: could not drain its Envoy: %s", self.key, error)
            case _:
                return
        self.changed()

    async def stop_envoy(self, *, drain: bool = False, grace: float = 10.0) -> None:
        """Stop the Envoy; with ``drain``, first drain its inbound listeners and let
        ``drain_seconds`` pass (callers were told this workload is draining)."""
        plan = Drain(self.drain_seconds, inbound_only=True, until_idle=False) if drain else None
        if self.supervisor.current is not None:
            await self.supervisor.shutdown(plan, grace=grace)
            self.recorded(self.key, None)
        self.status.envoy.state = "stopped"
        self.status.envoy.pid = None
        self.changed()

    # -- health ------------------------------------------------------------------------

    def tracker(self) -> HealthTracker:
        check = self.check.check
        self._tracker = HealthTracker(check.healthyThreshold, check.unhealthyThreshold)
        return self._tracker

    def use_check(self, check: EffectiveCheck) -> None:
        """Run ``check`` from now on (a TrafficPolicy's came, changed or went): the checker
        probes with it at once."""
        if check == self.check:
            return
        log.info(
            "%s: health check from %s now: %s",
            self.key,
            check.traffic_policy or check.source,
            check.to_json(),
        )
        fresh = not check.same_question(self.check)
        self.check = check
        if self._tracker is not None:
            c = check.check
            self._tracker.retune(c.healthyThreshold, c.unhealthyThreshold, fresh=fresh)
        self.status.health_check = check.to_json()
        self.changed()
        self._check_changed.set()

    async def probe_once(self, tracker: HealthTracker) -> AppHealth | None:
        """Probe the app once; the new health if it changed (None, too, when the check
        changed meanwhile: that result answers the old check)."""
        check = self.check
        error = await probe(check.check, self.config.appAddress, self.config.appPort)
        if check is not self.check:
            return None
        new = tracker.observe(error)
        self.status.health = tracker.state
        self.status.health_error = error
        self.changed()
        return new

    async def check_health(
        self, tracker: HealthTracker, report: Callable[[str, AppHealth], None]
    ) -> None:
        """Probe every interval (of the check it runs then) until cancelled, and at once
        when the check changes; ``report`` each change of health."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._check_changed.clear()
            new = await self.probe_once(tracker)
            if new is not None:
                log.info(
                    "%s: app is %s%s",
                    self.key,
                    new,
                    f" ({tracker.last_error})" if tracker.last_error else "",
                )
                report(self.key, new)
            interval = self.check.check.interval.total_seconds()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, interval - (loop.time() - started))):
                    await self._check_changed.wait()
