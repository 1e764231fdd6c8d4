"""The measured phases of ``bench/xds_scale.py``, against one in-process control plane and
the driver processes of simulated proxies (``xds_scale_driver.py``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from _common import cpu_seconds
from _drivers import DriverProc
from envoy.config.endpoint.v3 import endpoint_pb2
from google.protobuf import json_format
from xds_scale_mesh import Mesh

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.model.base import Resource
from gossamer.server.app import ControlPlaneApp
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import content_version
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import Outgoing, StreamState

E = ResourceType.ENDPOINT


@contextlib.contextmanager
def response_starts(rtype: ResourceType) -> Iterator[list[tuple[Snapshot, float]]]:
    """Meanwhile, each response of ``rtype`` the plane (in this process) began writing: the
    snapshot it was planned from and the ``time.monotonic()`` then (``StreamState.sent`` is
    called just before the write; when the write completes says little, as the loop learns
    it after its backlog)."""
    starts: list[tuple[Snapshot, float]] = []
    real = StreamState.sent

    def sent(self: StreamState, out: Outgoing, snap: Snapshot, now: float) -> Outgoing:
        if out.type is rtype:
            starts.append((snap, time.monotonic()))
        return real(self, out, snap, now)

    StreamState.sent = sent  # type: ignore[method-assign]
    try:
        yield starts
    finally:
        StreamState.sent = real  # type: ignore[method-assign]


@dataclass
class Change:
    """One measured change (or burst): per affected proxy the seconds from the (first)
    apply until it ACKed the new content."""

    latencies: dict[str, float] = field(default_factory=dict)
    lost: int = 0
    #: proxies whose change only the barrier publish sent (a debounced round missed it)
    late: int = 0
    bytes: int = 0
    changed_bytes: int = 0
    #: resources received (all types) against resources changed: each changed one sent once
    #: is 1.0, whatever the envelope around it (the bytes' ratio counts that too)
    resources_sent: int = 0
    resources_changed: int = 0
    #: per proxy: responses of the watched type during the change
    pushes: dict[str, int] = field(default_factory=dict)
    cpu: float = 0.0
    #: the simulated proxies' CPU (all drivers, on their core) from the apply until settled
    driver_cpu: float = 0.0
    #: seconds from the (first) apply until the plane began writing its last response of
    #: the watched type to a simulated proxy: the plane's side of the change
    last_write: float | None = None
    #: ... and its first: what the plane did before the fan-out began (validate, store,
    #: publish)
    first_write: float | None = None
    applied: list[float] = field(default_factory=list)
    real: dict[str, float | None] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def worst(self) -> float:
        return max(self.latencies.values(), default=0.0)


class Bench:
    def __init__(
        self,
        app: ControlPlaneApp,
        mesh: Mesh,
        drivers: Sequence[DriverProc],
        args: argparse.Namespace,
    ) -> None:
        self.app = app
        self.mesh = mesh
        self.drivers = drivers
        self.args = args
        self.nodes = [n for d in drivers for n in d.nodes]
        self.real_nodes: list[str] = []
        self.envoys: dict[str, EnvoyProcess] = {}

    @property
    def cache(self) -> Any:
        return self.app.plane.cache

    @property
    def debounce(self) -> float:
        model = self.app.plane.model
        assert model is not None
        return model.mesh.spec.debounceMs / 1000

    async def ask_all(self, cmd: dict[str, Any], within: float = 120.0) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(d.ask(cmd, within) for d in self.drivers)))

    async def driver_cpu(self) -> float:
        return float(sum(r["cpu_s"] for r in await self.ask_all({"cmd": "stats"})))

    def synced_nodes(self) -> set[str]:
        """Node ids whose open stream has ACKed everything of its newest snapshot (one pass
        over the streams: ``monitor.synced`` per node would be quadratic)."""
        return {
            p.node_id
            for p in self.app.plane.monitor.statuses()
            if p.connected and p.synced and self.cache.get(p.node_id) is not None
        }

    async def until_synced(self, nodes: Sequence[str], within: float) -> dict[str, float]:
        """Poll (100 ms) until every node is in sync; when each was first seen so."""
        seen: dict[str, float] = {}
        deadline = time.monotonic() + within
        while len(seen) < len(nodes) and time.monotonic() < deadline:
            now = time.monotonic()
            synced = self.synced_nodes()
            for n in nodes:
                if n in synced and n not in seen:
                    seen[n] = now
            await asyncio.sleep(0.1)
        return seen

    async def settle(self, builds0: int, within: float) -> None:
        """Until a publish round ended after ``builds0`` and the publisher did no work for
        a while: ``build_seconds`` grows after every slice of a round, so a long round
        still running is seen (``builds`` grows only when one ends)."""
        publisher = self.app.plane.publisher
        quiet = 2 * self.debounce + 0.1
        deadline = time.monotonic() + within
        while publisher.builds <= builds0 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        last, since = (publisher.builds, publisher.build_seconds), time.monotonic()
        while time.monotonic() - since < quiet and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            if (publisher.builds, publisher.build_seconds) != last:
                last, since = (publisher.builds, publisher.build_seconds), time.monotonic()

    async def _real_times(
        self, before: dict[str, Snapshot | None], t0: float, within: float
    ) -> dict[str, float | None]:
        """Seconds from ``t0`` until each real Envoy ACKed a snapshot newer than ``before``."""
        out: dict[str, float | None] = {}
        deadline = t0 + within
        monitor = self.app.plane.monitor
        while len(out) < len(self.real_nodes) and time.monotonic() < deadline:
            for n in self.real_nodes:
                snap = self.cache.get(n)
                fresh = n not in out and snap is not None and snap is not before[n]
                if fresh and monitor.synced(n, snap):
                    out[n] = time.monotonic() - t0
            await asyncio.sleep(0.005)
        return {n: out.get(n) for n in self.real_nodes}

    async def measure(self, rtype: ResourceType, batches: Sequence[Sequence[Resource]]) -> Change:
        """Apply ``batches`` one after the other (no wait); until every simulated proxy whose
        ``rtype`` resources changed ACKed the final content."""
        everyone = self.nodes + self.real_nodes
        before = {n: self.cache.get(n) for n in everyone}
        await self.ask_all({"cmd": "watch", "type": rtype.short})
        # a change as an operator makes it: after a quiet debounce period (the barrier
        # publish ending the change before counts, and would make this one wait a period)
        await asyncio.sleep(self.debounce + 0.01)
        pid = os.getpid()
        change = Change()
        dcpu0 = await self.driver_cpu()
        cpu0, builds0 = cpu_seconds(pid), self.app.plane.publisher.builds
        with response_starts(rtype) as starts:
            for batch in batches:
                change.applied.append(time.monotonic())
                await self.app.plane.apply(list(batch), wait=False)
            t0 = change.applied[0]
            real = asyncio.create_task(self._real_times(before, t0, self.args.timeout))
            await self.settle(builds0, self.args.timeout)
        change.cpu = cpu_seconds(pid) - cpu0
        change.driver_cpu = await self.driver_cpu() - dcpu0
        # (the simulated proxies' responses: each proxy's snapshot is an object of its own)
        real_snaps = {id(self.cache.get(n)) for n in self.real_nodes}
        simulated = [at for snap, at in starts if id(snap) not in real_snaps]
        change.last_write = max(simulated) - t0 if simulated else None
        change.first_write = min(simulated) - t0 if simulated else None
        change.late = len(await self.app.plane.publish())  # the barrier: should send nothing
        expected: dict[str, dict[str, str]] = {}
        for n in self.nodes:
            snap, old = self.cache.get(n), before[n]
            if snap is None:
                continue
            before_d, now_d = (old.digests if old is not None else None), snap.digests
            if before_d and now_d and before_d[rtype] == now_d[rtype]:
                continue  # (the type did not change: nothing to compare, O(1))
            was = old.resources[rtype] if old is not None else {}
            diff = {
                name: v.version
                for name, v in snap.resources[rtype].items()
                if (w := was.get(name)) is None or w.version != v.version
            }
            if diff:
                expected[n] = diff
                change.resources_changed += len(diff)
        replies = await asyncio.gather(
            *(
                d.ask(
                    {
                        "cmd": "expect",
                        "nodes": {n: expected[n] for n in d.nodes if n in expected},
                        "within": self.args.timeout,
                    },
                    self.args.timeout + 60,
                )
                for d in self.drivers
            )
        )
        for reply in replies:
            for node, got in reply["nodes"].items():
                if got["t"] is None:
                    change.lost += 1
                    change.missing.append(f"{node} {got['missing']}")
                else:
                    change.latencies[node] = got["t"] - t0
                change.changed_bytes += got["changed_bytes"]
            for node, (typed, _, nbytes, received) in reply["traffic"].items():
                change.bytes += nbytes
                change.resources_sent += received
                if typed:
                    change.pushes[node] = typed
        change.real = await real
        return change

    async def reconnect_storm(self, within: float) -> tuple[float, dict[str, Any]]:
        """Abort every simulated stream at once, wait until the plane saw them all close,
        reconnect them all; the seconds until all are in sync and what they were sent."""
        await self.ask_all({"cmd": "watch", "type": E.short})
        await self.ask_all({"cmd": "drop", "within": within}, within + 30)
        deadline = time.monotonic() + within
        while any(self.cache.attached(n) for n in self.nodes):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        t0 = time.monotonic()
        await self.ask_all({"cmd": "reconnect"})
        seen = await self.until_synced(self.nodes, within)
        took = max(seen.values(), default=t0) - t0 if len(seen) == len(self.nodes) else -1.0
        totals = [0, 0, 0]
        for r in await self.ask_all({"cmd": "traffic"}):
            for _, responses, nbytes, received in r["traffic"].values():
                totals[0] += responses
                totals[1] += nbytes
                totals[2] += received
        held = sum(
            len(s.resources[t])
            for n in self.nodes
            if (s := self.cache.get(n)) is not None
            for t in ResourceType
        )
        return took, {
            "responses": totals[0], "bytes": totals[1], "resources": totals[2], "held": held,
        }  # fmt: skip

    async def out_of_sync(self) -> list[str]:
        """Simulated proxies not holding exactly what the cache has for them (content
        hashed on the client's side), or not in sync by the plane's own account."""
        digests: dict[str, Any] = {}
        for reply in await self.ask_all({"cmd": "digests"}, 300):
            digests.update(reply["digests"])
        synced = self.synced_nodes()
        bad = []
        for n in self.nodes:
            snap = self.cache.get(n)
            if snap is None:
                bad.append(f"{n}: the plane has no snapshot for it")
                continue
            if n not in synced:
                bad.append(f"{n}: not in sync by the plane's status")
            for t in ResourceType:
                want = content_version((k, v.version) for k, v in snap.resources[t].items())
                have, count = digests[n][t.short]
                if have != want:
                    bad.append(f"{n}: {t.short} differ ({count} held, {len(snap.resources[t])})")
        return bad


def endpoints_of(cla: Any) -> list[tuple[str, int, int, int]]:
    """What a ClusterLoadAssignment says a caller should do: (address, port, weight,
    health) per endpoint (Envoy's config dump adds defaults: its bytes differ)."""
    return sorted(
        (
            lb.endpoint.address.socket_address.address,
            lb.endpoint.address.socket_address.port_value,
            lb.load_balancing_weight.value,
            lb.health_status,
        )
        for group in cla.endpoints
        for lb in group.lb_endpoints
    )


async def real_eds_check(bench: Bench, real: str, simulated: str) -> str:
    """Does the real Envoy ``real`` (its config dump) hold the endpoints the cache has for
    it, the simulated ``simulated`` the very bytes, and does the plane give both the same?"""
    envoy = bench.envoys[real]
    dump = await envoy.admin.config_dump(include_eds=True)
    held: dict[str, list[tuple[str, int, int, int]]] = {}
    for section in dump.get("configs", []):
        for entry in section.get("dynamic_endpoint_configs", []):
            config = dict(entry["endpoint_config"])
            config.pop("@type", None)
            cla = json_format.ParseDict(config, endpoint_pb2.ClusterLoadAssignment())
            held[cla.cluster_name] = endpoints_of(cla)
    mine = bench.cache.get(real).resources[E]
    want_real = {
        k: endpoints_of(endpoint_pb2.ClusterLoadAssignment.FromString(v.resource.value))
        for k, v in mine.items()
    }
    want_sim = {k: v.version for k, v in bench.cache.get(simulated).resources[E].items()}
    driver = next(d for d in bench.drivers if simulated in d.nodes)
    sim = (await driver.ask({"cmd": "versions", "node": simulated, "type": E.short}))["versions"]
    same_real = sum(held.get(k) == v for k, v in want_real.items())
    same_sim = sum(sim.get(k) == v for k, v in want_sim.items())
    same_cache = sum(want_sim.get(k) == v.version for k, v in mine.items())
    return (
        f"endpoint sets: real Envoy {real} holds the plane's endpoints (address, port, weight, "
        f"health) for {same_real}/{len(want_real)}; simulated {simulated} holds the plane's "
        f"very bytes for {same_sim}/{len(want_sim)}; the plane sends both the same bytes for "
        f"{same_cache}/{len(mine)}"
    )
