"""TLS readiness: endpoints are marked only after their sidecar ACKed a listener taking TLS,
a strict sidecar refuses plaintext only after every caller ACKed the mark; each step is
published incrementally and equals a full rebuild."""

from __future__ import annotations

import asyncio
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.publisher import Publisher
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.controlplane.tls_readiness import TlsReadiness
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.store.memory import MemoryStore
from gossamer.translate.proxy import Translator
from gossamer.types import ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot

WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1")
REVIEWS_2 = ProxyIdentity("sidecar", "default", "reviews-2")
EDGE = ProxyIdentity("gateway", "default", "edge")
PROXIES = (WEB, REVIEWS, REVIEWS_2, EDGE)


def mesh(mode: str) -> ModelSnapshot:
    text = f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{mtls: {{mode: {mode}}}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: web-1}}
spec:
  service: web
  address: 127.0.0.2
  ports: [{{port: 15001, appPort: 8080}}]
  dependencies: [{{service: reviews}}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: reviews-1, labels: {{version: v1}}}}
spec: {{service: reviews, address: 127.0.0.3, ports: [{{port: 15001, appPort: 9080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: reviews-2, labels: {{version: v2}}}}
spec: {{service: reviews, address: 127.0.0.4, ports: [{{port: 15001, appPort: 9080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: 18000}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: reviews, subset: {{version: v2}}}}]}}]
"""
    return ModelSnapshot().with_changes(parse_yaml(text, "mesh.yaml"))


async def mesh_plane(mode: str, monitor: XdsMonitor | None = None) -> ControlPlane:
    """A loaded control plane (memory store) holding ``mesh(mode)``, every proxy of it
    attached, nothing published yet."""
    cache = SnapshotCache()
    plane = ControlPlane(MemoryStore(), cache, monitor or XdsMonitor(CollectorRegistry()))
    await plane.load()
    await plane.apply(list(mesh(mode).resources.values()))
    for p in PROXIES:
        cache.attach(p)
    return plane


class Acks:
    """What the xDS monitor would say: which snapshot each proxy ACKed."""

    def __init__(self, cache: SnapshotCache) -> None:
        self.cache = cache
        self.acked: dict[str, Snapshot] = {}

    def ack(self, *proxies: ProxyIdentity) -> None:
        for p in proxies:
            snap = self.cache.get(p.node_id)
            assert snap is not None
            self.acked[p.node_id] = snap

    def synced(self, node_id: str, snap: Snapshot) -> bool:
        return self.acked.get(node_id) is snap


class World:
    def __init__(self, mode: str, capable: tuple[ProxyIdentity, ...] = PROXIES) -> None:
        self.model = mesh(mode)
        self.cache = SnapshotCache()
        self.acks = Acks(self.cache)
        self.tls = TlsReadiness(self.cache, self.acks)
        self.tls.set_capable(frozenset(p.node_id for p in capable))
        self.tls.set_holding(frozenset(p.node_id for p in capable))
        self.publisher = Publisher(self.cache, lambda: self.model, self.tls.state)
        for p in PROXIES:
            self.cache.attach(p)

    def refresh(self) -> bool:
        return self.tls.refresh(self.model, self.publisher.published_tls)

    def publish(self) -> None:
        asyncio.run(self.publisher.publish(slice_s=math.inf))
        self.check_equals_rebuild()

    def check_equals_rebuild(self) -> None:
        fresh, serializer = Translator(), Serializer()
        for p in self.cache.connected():
            got = self.cache.get(p.node_id)
            assert got is not None
            want = proxy_snapshot(
                fresh.proxy(self.model, p, self.publisher.published_tls), serializer
            )
            assert versions(got) == versions(want), p.node_id

    def chains(self, proxy: ProxyIdentity) -> int:
        from envoy.config.listener.v3 import listener_pb2

        snap = self.cache.get(proxy.node_id)
        assert snap is not None
        listener = listener_pb2.Listener()
        snap.of(ResourceType.LISTENER)["inbound|http"].resource.Unpack(listener)
        return len(listener.filter_chains)

    def marked(self, proxy: ProxyIdentity, cluster: str) -> set[str]:
        from envoy.config.endpoint.v3 import endpoint_pb2

        snap = self.cache.get(proxy.node_id)
        assert snap is not None
        cla = endpoint_pb2.ClusterLoadAssignment()
        snap.of(ResourceType.ENDPOINT)[cluster].resource.Unpack(cla)
        return {
            ep.endpoint.hostname
            for group in cla.endpoints
            for ep in group.lb_endpoints
            if "envoy.transport_socket_match" in ep.metadata.filter_metadata
        }


def versions(snap: Snapshot) -> dict[str, dict[str, str]]:
    return {t.short: {n: v.version for n, v in snap.of(t).items()} for t in ResourceType}


ALL = "outbound|default/reviews|http"
V2 = "outbound|default/reviews|http|version=v2"


def test_strict_marks_after_the_listener_ack_and_refuses_plaintext_after_the_callers_ack() -> None:
    w = World("strict")
    w.publish()
    assert w.chains(REVIEWS) == 2  # takes TLS and, until every caller sends it, plaintext
    assert w.marked(WEB, ALL) == set()
    assert not w.refresh()  # nobody ACKed anything: nothing to publish

    w.acks.ack(REVIEWS)
    assert w.refresh()
    assert w.tls.state().ready == {("default", "reviews-1")}
    w.publish()
    assert w.publisher.incremental_rounds == 1
    assert w.marked(WEB, ALL) == {"reviews-1"}
    assert w.chains(REVIEWS) == 2
    assert not w.refresh()  # web-1 has not ACKed the mark yet

    w.acks.ack(WEB)
    w.refresh()  # (web-1 is ready itself now)
    assert w.tls.state().enforced == frozenset()  # the gateway holds reviews' endpoints too
    w.acks.ack(EDGE)
    assert w.refresh()
    assert w.tls.state().enforced == {("default", "reviews-1")}
    w.publish()
    assert w.chains(REVIEWS) == 1  # TLS only

    # The sidecar goes away: its endpoints lose the mark, and it starts over.
    w.cache.detach(REVIEWS)
    assert w.refresh()
    w.publish()
    assert w.marked(WEB, ALL) == set()
    state = w.tls.state()
    assert ("default", "reviews-1") not in state.ready | state.enforced


def test_a_sidecar_is_ready_only_once_its_envoy_holds_its_secrets() -> None:
    """Envoy ACKs a listener while it still warms, waiting for its certificate over SDS (the
    old plaintext listener serves meanwhile): its endpoints are marked only once its agent
    reports that the Envoy holds its identity and trust bundle."""
    w = World("permissive")
    w.tls.set_holding(frozenset({WEB.node_id, EDGE.node_id}))
    w.publish()
    w.acks.ack(*PROXIES)
    w.refresh()
    assert ("default", "reviews-1") not in w.tls.state().ready
    w.publish()
    assert w.marked(WEB, ALL) == set()

    assert w.tls.set_holding(frozenset(p.node_id for p in PROXIES))
    assert w.refresh()
    assert ("default", "reviews-1") in w.tls.state().ready
    w.publish()
    assert w.marked(WEB, ALL) == {"reviews-1", "reviews-2"}

    # its Envoy was replaced (the new one holds nothing yet): the mark goes
    w.tls.set_holding(frozenset({WEB.node_id, EDGE.node_id, REVIEWS_2.node_id}))
    assert w.refresh()
    w.publish()
    assert w.marked(WEB, ALL) == {"reviews-2"}


def test_permissive_marks_but_never_refuses_plaintext() -> None:
    w = World("permissive")
    w.publish()
    w.acks.ack(*PROXIES)
    assert w.refresh()
    w.publish()
    assert w.marked(WEB, ALL) == {"reviews-1", "reviews-2"}
    assert w.marked(EDGE, V2) == {"reviews-2"}
    w.acks.ack(*PROXIES)
    assert not w.refresh()
    assert w.tls.state().enforced == frozenset()
    assert w.chains(REVIEWS) == 2


def test_off_and_incapable_sidecars_are_never_ready() -> None:
    w = World("off")
    w.publish()
    w.acks.ack(*PROXIES)
    assert not w.refresh()
    w = World("strict", capable=(WEB, EDGE))
    w.publish()
    assert w.chains(REVIEWS) == 1 and w.marked(WEB, ALL) == set()  # plaintext only
    w.acks.ack(*PROXIES)
    w.refresh()
    assert w.tls.state().ready == {("default", "web-1")}  # not reviews-1: it cannot get secrets


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["strict", "permissive", "off"]),
    st.lists(st.lists(st.sampled_from(PROXIES), max_size=4), min_size=1, max_size=8),
)
def test_every_readiness_step_published_incrementally_equals_a_full_rebuild(
    mode: str, rounds: list[list[ProxyIdentity]]
) -> None:
    w = World(mode)
    w.publish()
    for acked in rounds:
        w.acks.ack(*acked)
        w.refresh()
        w.publish()  # checks the cache against a full rebuild


def test_the_state_is_the_same_object_while_nothing_in_it_changes() -> None:
    """Translation keys what it looked up by the state's identity: an equal state made
    anew each round would have every round look every cluster up again."""
    w = World("strict")
    first = w.tls.state()
    assert w.tls.state() is first
    w.tls.set_capable(frozenset(p.node_id for p in PROXIES))  # the same proxies, anew
    assert w.tls.state() is first
    w.publish()
    assert not w.refresh()  # nothing ACKed: the same state
    assert w.tls.state() is first
    w.acks.ack(REVIEWS)
    assert w.refresh()
    ready = w.tls.state()
    assert ready is not first and ready.ready == {("default", "reviews-1")}
    assert w.tls.state() is ready
