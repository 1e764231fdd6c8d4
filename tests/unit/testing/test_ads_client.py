"""The fake ADS client driving the real ``xds/stream.py`` in-process, over a real control
plane (memory store, real translation and SnapshotCache): start-up, updates, NACKs, removals."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.core.v3 import base_pb2

from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import XdsError
from gossamer.model import parse_manifest
from gossamer.testing.ads_client import AdsClient, in_process
from gossamer.testing.controlplane import memory_control_plane
from gossamer.testing.mesh import route, service, workload
from gossamer.types import Manifest, ProxyIdentity
from gossamer.xds.resources import ResourceType
from gossamer.xds.snapshot import Snapshot

pytestmark = pytest.mark.asyncio
MODES = pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE
X = ResourceType.EXTENSION_CONFIG
WEB = ProxyIdentity("sidecar", "default", "web-1", service="web")  # as its agent names it
DEPS = [{"service": "reviews", "localAddress": "127.0.0.2", "localPort": 9001}]


def mesh(*extra: Manifest, deps: list[dict[str, Any]] | None = None) -> list[Manifest]:
    return [
        service("web"),
        service("reviews", 9080),
        workload(
            "web-1", "web", "127.0.0.2", 15001, 8080, dependencies=DEPS if deps is None else deps
        ),
        workload("reviews-1", "reviews", "127.0.0.3", 15001, 8080),
        *extra,
    ]


async def apply(plane: ControlPlane, manifests: list[Manifest], wait: bool = True) -> None:
    await plane.apply([parse_manifest(m) for m in manifests], wait=wait, wait_timeout=10)


def snap(plane: ControlPlane) -> Snapshot:
    got = plane.cache.get(WEB.node_id)
    assert got is not None
    return got


def synced(plane: ControlPlane) -> bool:
    current = plane.cache.get(WEB.node_id)
    return current is not None and plane.monitor.synced(WEB.node_id, current)


def holds_snapshot(client: AdsClient, expected: Snapshot | None) -> bool:
    """The client holds exactly the snapshot's resources, decoded, at its versions."""
    if expected is None:
        return False
    for t in ResourceType:
        want = expected.of(t)
        have = client.resources(t)
        if have.keys() != want.keys():
            return False
        for name, held in have.items():
            if held.message.SerializeToString(deterministic=True) != want[name].resource.value:
                return False
            if client.delta and held.version != want[name].version:
                return False
    return not client.protocol.warming


def reviews_cluster(client: AdsClient) -> str:
    [name] = [n for n in client.resources(C) if "reviews" in n]
    return name


@MODES
async def test_initial_config_in_envoy_order(delta: bool) -> None:
    async with memory_control_plane() as plane:
        await apply(plane, mesh())
        async with in_process(WEB, plane.cache, plane.monitor, delta=delta) as client:
            client.protocol.trace = []
            await client.wait_for(
                lambda c: holds_snapshot(c, plane.cache.get(WEB.node_id)), what="the snapshot"
            )
            await client.wait_for(lambda c: plane.monitor.synced(WEB.node_id, snap(plane)))
            expected = snap(plane)

        trace = client.protocol.trace
        assert trace is not None
        # Envoy: the bootstrap's static EDS (the sidecar's local cluster) -> CDS once it is
        # initialised -> ACK EDS -> EDS for the clusters received -> ACK CDS -> LDS ->
        # ACK EDS -> ECDS, RDS -> ACK LDS -> ACK ECDS -> ACK RDS
        assert trace[:12] == [
            ("subscribe", E),
            ("subscribe", C),
            ("ack", E),
            ("subscribe", E),
            ("ack", C),
            ("subscribe", L),
            ("ack", E),
            ("subscribe", X),
            ("subscribe", R),
            ("ack", L),
            ("ack", X),
            ("ack", R),
        ]
        assert client.counters.nacks == 0
        assert client.counters.acks == client.counters.responses == 6
        assert client.counters.bytes_received > 0
        if not delta:
            for t in ResourceType:
                assert client.view(t).version == expected.version(t)
        [status] = plane.proxy_status()
        assert status.protocol == ("delta" if delta else "sotw")


@MODES
async def test_an_update_arrives_decoded_and_acked(delta: bool) -> None:
    async with memory_control_plane() as plane:
        await apply(plane, mesh())
        async with in_process(WEB, plane.cache, plane.monitor, delta=delta) as client:
            await client.wait_for(lambda c: holds_snapshot(c, plane.cache.get(WEB.node_id)))
            before = client.counters.responses
            await apply(plane, [workload("reviews-2", "reviews", "127.0.0.4", 15001, 8080)])
            await client.wait_for(
                lambda c: holds_snapshot(c, plane.cache.get(WEB.node_id)), what="the update"
            )
            cla = client.resources(E)[reviews_cluster(client)].message
            addresses = {
                e.endpoint.address.socket_address.address
                for group in cla.endpoints
                for e in group.lb_endpoints
            }
            assert {"127.0.0.3", "127.0.0.4"} <= addresses
            assert client.counters.responses > before
            assert client.counters.nacks == 0
            assert plane.monitor.synced(WEB.node_id, snap(plane))


@MODES
async def test_a_nack_on_demand_shows_in_proxy_status_and_recovers(delta: bool) -> None:
    async with memory_control_plane() as plane:
        await apply(plane, mesh())
        async with in_process(WEB, plane.cache, plane.monitor, delta=delta) as client:
            await client.wait_for(lambda c: holds_snapshot(c, plane.cache.get(WEB.node_id)))
            accepted = dict(client.versions(R))
            rejection = client.reject(R, reason="no routes today")
            await apply(
                plane,
                [route("reviews", "reviews", [{"destinations": [{"service": "reviews"}]}])],
                wait=False,
            )
            await client.wait_for(lambda c: c.counters.nacks > 0, what="a NACK")

            def nacked() -> Any:
                [status] = plane.proxy_status()
                return next(t.last_nack for t in status.types if t.type == "routes")

            await client.wait_for(lambda c: nacked() is not None, what="the NACK in status")
            assert "no routes today" in nacked().message
            assert client.view(R).last_error is not None
            assert client.versions(R) == accepted  # a NACKed response changes nothing
            if not delta:
                assert nacked().version != client.view(R).version

            client.lift(rejection)  # the control plane retries on its back-off timer
            await client.wait_for(
                lambda c: holds_snapshot(c, plane.cache.get(WEB.node_id)), what="recovery"
            )
            await client.wait_for(lambda c: nacked() is None, what="the NACK cleared")


@MODES
async def test_removed_cluster_and_listener_go_away(delta: bool) -> None:
    async with memory_control_plane() as plane:
        await apply(plane, mesh())
        async with in_process(WEB, plane.cache, plane.monitor, delta=delta) as client:
            await client.wait_for(lambda c: holds_snapshot(c, plane.cache.get(WEB.node_id)))
            gone_cluster = reviews_cluster(client)
            listeners = set(client.resources(L))
            await apply(plane, mesh(deps=[]))
            await client.wait_for(
                lambda c: holds_snapshot(c, plane.cache.get(WEB.node_id)), what="the removal"
            )
            assert gone_cluster not in client.resources(C)
            assert gone_cluster not in client.view(E).names  # type: ignore[operator]
            gone_listeners = listeners - set(client.resources(L))
            assert gone_listeners
            if delta:
                assert gone_cluster in client.view(C).removed
                assert gone_listeners <= set(client.view(L).removed)
            else:
                assert client.view(C).removed == []
            assert client.counters.nacks == 0


async def test_a_stream_the_server_refuses_ends_with_its_error() -> None:
    async with memory_control_plane() as plane:
        proxy = ProxyIdentity("sidecar", "default", "x")
        node = base_pb2.Node(id="not-a-gossamer-id")
        async with in_process(proxy, plane.cache, plane.monitor, node=node) as client:
            with pytest.raises(XdsError, match="not a Gossamer proxy id"):
                await client.wait_for(lambda _: False, timeout=5)
            assert client.closed


@MODES
async def test_a_reconnect_resumes_and_nothing_is_sent_again(delta: bool) -> None:
    async with memory_control_plane() as plane:
        await apply(plane, mesh())
        async with in_process(WEB, plane.cache, plane.monitor, delta=delta) as client:
            await client.wait_for(lambda c: holds_snapshot(c, plane.cache.get(WEB.node_id)))
            held = {t: client.versions(t) for t in ResourceType}
        assert client.closed
        responses = client.counters.responses
        client.protocol.trace = []
        async with in_process(WEB, plane.cache, plane.monitor, client=client) as again:
            assert again is client
            await client.wait_for(lambda c: synced(plane), what="resynced")
            assert [kind for kind, _ in client.protocol.trace] == ["subscribe"] * 5
            assert client.counters.responses == responses  # versions recognised: no resend
            assert {t: client.versions(t) for t in ResourceType} == held
