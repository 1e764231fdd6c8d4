"""One workload on this host: keep its sidecar Envoy running (restart with back-off) and
health-check its app."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.agent.backoff import Backoff
from gossamer.agent.config import WorkloadConfig
from gossamer.agent.envoy import Sidecar, bootstrap_digest
from gossamer.agent.health import AppHealth, HealthTracker, probe
from gossamer.agent.state import EnvoyRecord
from gossamer.agent.status import WorkloadStatus
from gossamer.errors import GossamerError
from gossamer.ports import require_free

log = logging.getLogger(__name__)

#: an Envoy that ran this long before dying is restarted without waiting
STABLE_AFTER_S = 30.0


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
    sidecar: Sidecar | None = None

    @property
    def key(self) -> str:
        return f"{self.config.namespace}/{self.config.name}"

    @property
    def digest(self) -> str:
        return bootstrap_digest(self.bootstrap)

    def adopted(self, sidecar: Sidecar) -> None:
        self.sidecar = sidecar
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
        self.sidecar = sidecar
        self.recorded(self.key, sidecar.record)
        log.info(
            "%s: started Envoy pid %d (admin %s)",
            self.key,
            sidecar.record.pid,
            sidecar.record.admin,
        )
        return sidecar

    async def supervise(self) -> None:
        """Keep the Envoy running until cancelled; restarts a dead one with back-off."""
        backoff = Backoff(initial=0.2, maximum=30.0)
        loop = asyncio.get_running_loop()
        envoy = self.status.envoy
        while True:
            sidecar = self.sidecar
            if sidecar is None or not sidecar.running:
                try:
                    sidecar = await self.start_envoy()
                except GossamerError as e:
                    delay = backoff.next()
                    log.warning("%s: %s (retrying in %.1f s)", self.key, e, delay)
                    envoy.state, envoy.error, envoy.retry_in = "failed", str(e), round(delay, 2)
                    self.changed()
                    await asyncio.sleep(delay)
                    continue
                envoy.state = "running"
            envoy.pid, envoy.admin, envoy.retry_in = sidecar.record.pid, sidecar.record.admin, None
            self.changed()
            since = loop.time()
            await sidecar.wait_exit()
            if loop.time() - since >= STABLE_AFTER_S:
                backoff.reset()
            delay = backoff.next()
            envoy.restarts += 1
            envoy.state = "restarting"
            envoy.error = f"Envoy (pid {sidecar.record.pid}) exited; see {self.workdir}/envoy.log"
            envoy.retry_in = round(delay, 2)
            log.warning("%s: %s; restarting in %.1f s", self.key, envoy.error, delay)
            self.changed()
            await asyncio.sleep(delay)

    async def stop_envoy(self, grace: float = 10.0) -> None:
        if self.sidecar is not None:
            await self.sidecar.stop(grace)
            self.sidecar = None
            self.recorded(self.key, None)
        self.status.envoy.state = "stopped"
        self.status.envoy.pid = None
        self.changed()

    # -- health ------------------------------------------------------------------------

    def tracker(self) -> HealthTracker:
        check = self.config.healthCheck
        return HealthTracker(check.healthyThreshold, check.unhealthyThreshold)

    async def probe_once(self, tracker: HealthTracker) -> AppHealth | None:
        """Probe the app once; the new health if it changed."""
        error = await probe(self.config.healthCheck, self.config.appAddress, self.config.appPort)
        new = tracker.observe(error)
        self.status.health = tracker.state
        self.status.health_error = error
        self.changed()
        return new

    async def check_health(
        self, tracker: HealthTracker, report: Callable[[str, AppHealth], None]
    ) -> None:
        """Probe every interval until cancelled; ``report`` each change of health."""
        interval = self.config.healthCheck.interval.total_seconds()
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            new = await self.probe_once(tracker)
            if new is not None:
                log.info(
                    "%s: app is %s%s",
                    self.key,
                    new,
                    f" ({tracker.last_error})" if tracker.last_error else "",
                )
                report(self.key, new)
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))
