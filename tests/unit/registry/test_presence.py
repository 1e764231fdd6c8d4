"""The liveness rule in the control plane, on hand-moved clocks (no Envoy, no sleeps): a
dead host's endpoints are published unhealthy and its agent shows unreachable; the store
is never written; a restarted control plane declares no host dead; a heartbeat or a
stream brings a host back."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import health_check_pb2
from prometheus_client import CollectorRegistry

from gossamer.controlplane.plane import ControlPlane
from gossamer.model import parse_manifest
from gossamer.registry import Registry
from gossamer.registry.liveness import LivenessSettings
from gossamer.store.memory import MemoryStore
from gossamer.types import ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.state import StreamState

from .mesh import ANY, SHOP, Clock, workload

SETTINGS = LivenessSettings(heartbeat_interval=10, missed_heartbeats=3, stream_grace=20)
CART = (("default", "cart"), "http", ())


class Monotonic:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


async def _mesh(store: MemoryStore, mono: Monotonic) -> tuple[ControlPlane, Registry]:
    plane = ControlPlane(store, SnapshotCache(), XdsMonitor(CollectorRegistry()))
    registry = Registry(plane, clock=Clock(), liveness=SETTINGS, monotonic=mono)
    await plane.load()
    return plane, registry


def _health(plane: ControlPlane) -> list[int]:
    view = plane._translated()
    cla = plane.translator.endpoints(view, CART)
    return [e.health_status for loc in cla.endpoints for e in loc.lb_endpoints]


@pytest.mark.asyncio
async def test_a_dead_host_is_published_unhealthy_in_memory_only() -> None:
    store, mono = MemoryStore(), Monotonic()
    plane, registry = await _mesh(store, mono)
    await plane.apply([parse_manifest(m) for m in SHOP])
    agent_id, _ = await registry.join((await registry.create_token(scope=ANY))[0], "vm-1")
    await registry.set_workloads(agent_id, [workload("cart-1", host="vm-1")])
    presence = registry.presence
    revision = await store.revision()

    # not started (still loading): nobody dies, however long the silence
    mono.now += 10_000
    assert presence.evaluate() is None
    assert presence.dead == frozenset()

    presence.rule.start(mono.now)
    assert presence.evaluate() == mono.now + 30
    mono.now += 29.9
    presence.evaluate()
    assert registry.list_agents()[0].state == "active"
    assert _health(plane) == [health_check_pb2.HEALTHY]

    mono.now += 0.1
    assert presence.evaluate() is None
    assert plane.unreachable == {"vm-1"}
    assert registry.list_agents()[0].state == "unreachable"
    assert _health(plane) == [health_check_pb2.UNHEALTHY]
    # what the agent reported stays in the store and the model: nothing was written
    assert plane.model is not None
    assert plane.model.workloads[("default", "cart-1")].spec.health == "healthy"
    assert await store.revision() == revision

    # the same marked copy is reused while the workload is unchanged (small patches)
    assert plane._translated() is plane._translated()

    # back at its agent's next call
    registry._seen(registry._agent(agent_id))  # type: ignore[arg-type]
    presence.evaluate()
    assert plane.unreachable == frozenset()
    assert registry.list_agents()[0].state == "active"
    assert _health(plane) == [health_check_pb2.HEALTHY]
    await store.close()


@pytest.mark.asyncio
async def test_an_open_stream_keeps_a_silent_agents_host_alive_and_its_end_starts_the_grace() -> (
    None
):
    store, mono = MemoryStore(), Monotonic()
    plane, registry = await _mesh(store, mono)
    await plane.apply([parse_manifest(m) for m in SHOP])
    await registry.join((await registry.create_token(scope=ANY))[0], "vm-1")
    presence = registry.presence
    presence.rule.start(mono.now)
    proxy = ProxyIdentity("sidecar", "default", "cart-1", host="vm-1")
    plane.monitor.opened("s1", proxy, StreamState(delta=False), "sotw", None)
    mono.now += 1000
    assert presence.evaluate() is None
    assert presence.dead == frozenset()
    plane.monitor.closed("s1")
    assert presence.evaluate() == mono.now + 20
    mono.now += 20
    presence.evaluate()
    assert presence.dead == {"vm-1"}
    plane.monitor.opened("s2", proxy, StreamState(delta=False), "sotw", None)
    presence.evaluate()
    assert presence.dead == frozenset()
    plane.monitor.close()
    await store.close()


@pytest.mark.asyncio
async def test_streams_of_hosts_without_an_agent_are_not_remembered() -> None:
    store, mono = MemoryStore(), Monotonic()
    plane, registry = await _mesh(store, mono)
    for i in range(100):
        proxy = ProxyIdentity("sidecar", "default", f"p{i}", host=f"h{i}")
        plane.monitor.opened(f"s{i}", proxy, StreamState(delta=False), "sotw", None)
        plane.monitor.closed(f"s{i}")
    assert not any(registry.presence.rule.knows(f"h{i}") for i in range(100))
    plane.monitor.close()
    await store.close()


class Shared:
    """Another replica's judgements, set by the test (``SharedPresence``)."""

    def __init__(self) -> None:
        self.on_change = lambda: None
        self.published: frozenset[str] = frozenset()
        self.elsewhere: frozenset[str] = frozenset()

    def publish(self, alive: object) -> None:
        self.published = frozenset(alive)  # type: ignore[arg-type]

    def alive_elsewhere(self) -> frozenset[str]:
        return self.elsewhere


@pytest.mark.asyncio
async def test_a_host_another_replica_sees_alive_is_not_dead_here() -> None:
    store, mono, shared = MemoryStore(), Monotonic(), Shared()
    plane = ControlPlane(store, SnapshotCache(), XdsMonitor(CollectorRegistry()))
    registry = Registry(plane, clock=Clock(), liveness=SETTINGS, monotonic=mono, shared=shared)
    await plane.load()
    await plane.apply([parse_manifest(m) for m in SHOP])
    agent_id, _ = await registry.join((await registry.create_token(scope=ANY))[0], "vm-1")
    await registry.set_workloads(agent_id, [workload("cart-1", host="vm-1")])
    presence = registry.presence
    presence.rule.start(mono.now)
    presence.evaluate()
    assert shared.published == {"vm-1"}  # alive here: claimed for the others

    # silent here past the rule, but its agent calls another replica
    shared.elsewhere = frozenset({"vm-1"})
    mono.now += 30
    presence.evaluate()
    assert shared.published == frozenset()  # dead here: claim withdrawn
    assert registry.list_agents()[0].state == "active"
    assert _health(plane) == [health_check_pb2.HEALTHY]

    # the other replica no longer sees it either: dead everywhere
    shared.elsewhere = frozenset()
    shared.on_change()  # (what EtcdPresence calls): wakes the presence loop
    presence.evaluate()
    assert registry.list_agents()[0].state == "unreachable"
    assert _health(plane) == [health_check_pb2.UNHEALTHY]
