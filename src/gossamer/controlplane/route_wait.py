"""Waiting until a host's proxies, and every proxy that routes to what it serves, hold it.

``gossamer agent wait-ready`` (an agent's or a gateway's credential) asks this: a
``curl`` right after ``gossamer agent run ... &`` must not meet a gateway that has not yet
got the new endpoints, nor a sidecar without its listener. Ready means, at one moment:

- every one of the host's Workloads is stored and ``healthy`` (its agent health-checked it);
- each of the host's own proxies (its sidecars, or its gateway) is connected and has ACKed
  its newest snapshot;
- every other connected proxy whose newest snapshot has a cluster of one of those
  Workloads' services (``outbound|<ns>/<service>|...``) has ACKed that snapshot;

with every snapshot built after the Workloads were seen healthy (the wait publishes first,
so a debounced round cannot leave a proxy "synced" on the snapshot before).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from gossamer.model.snapshot import ModelSnapshot
from gossamer.model.workload import Workload
from gossamer.types import ResourceKey
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType


@dataclass(frozen=True, slots=True)
class Readiness:
    """What a wait found: ``ready`` when nothing is left in ``waiting``."""

    #: the proxies that hold the host's workloads (node ids): its own and their callers
    acked_by: list[str] = field(default_factory=list)
    #: what was still missing when the wait ended, one line each
    waiting: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.waiting


@dataclass(frozen=True)
class RouteWait:
    cache: SnapshotCache
    monitor: XdsMonitor
    model: Callable[[], ModelSnapshot | None]
    publish: Callable[[], Awaitable[object]]

    async def wait(
        self, workloads: Sequence[ResourceKey], own: Sequence[str], within: float
    ) -> Readiness:
        """Wait up to ``within`` seconds for ``workloads`` (healthy) and the proxies ``own``
        (node ids of the host's proxies) to be ready as the module says."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            progress = self.monitor.progress_event()
            found = await self._check(workloads, own)
            rest = deadline - loop.time()
            if found.ready or rest <= 0:
                return found
            try:
                async with asyncio.timeout(min(rest, 0.5)):  # (health lands in the store)
                    await progress.wait()
            except TimeoutError:
                pass

    async def _check(self, workloads: Sequence[ResourceKey], own: Sequence[str]) -> Readiness:
        model = self.model()
        if model is None:
            return Readiness(waiting=["the control plane is still loading"])
        waiting: list[str] = []
        services: set[str] = set()
        for key in workloads:
            found = model.resources.get(key)
            if not isinstance(found, Workload):
                waiting.append(f"{key} is not registered yet")
                continue
            services.add(f"{key.namespace}/{found.spec.service}")
            if found.spec.health != "healthy":
                waiting.append(f"{key} is {found.spec.health} (its health check has not passed)")
        if waiting:
            return Readiness(waiting=waiting)
        await self.publish()  # the newest snapshots are built from this model
        connected = {p.node_id for p in self.cache.connected()}
        targets = [n for n in own if n not in connected]
        waiting += [f"proxy {n} is not connected" for n in targets]
        callers = [n for n in sorted(connected) if n in own or self._routes_to(n, services)]
        acked = []
        for node in callers:
            snap = self.cache.get(node)
            if snap is not None and self.monitor.synced(node, snap):
                acked.append(node)
            else:
                waiting.append(f"proxy {node} has not ACKed its newest config")
        return Readiness(acked, waiting)

    def _routes_to(self, node: str, services: set[str]) -> bool:
        snap = self.cache.get(node)
        if snap is None:
            return False
        clusters = snap.resources.get(ResourceType.CLUSTER, {})
        return any(name.split("|")[1] in services for name in clusters if name.count("|") >= 2)
