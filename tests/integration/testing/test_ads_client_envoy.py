"""The fake ADS client over gRPC holds what a real Envoy holds for the same proxy identity:
same resources, same versions, same decoded content (Envoy's own /config_dump)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from google.protobuf import json_format

from gossamer.polling import wait_until
from gossamer.testing.ads_client import AdsClient, connect, open_channel
from gossamer.testing.ads_resources import MESSAGES
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import route, service, split, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import ResourceType

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE
WEB = ProxyIdentity("sidecar", "default", "web-1", service="web")  # as its agent names it
CLIENT = "127.0.0.2"
EDS = cluster_pb2.Cluster.EDS

#: where each type sits in Envoy's config dump: (section, list, resource field)
DUMP = {
    C: ("ClustersConfigDump", "dynamic_active_clusters", "cluster"),
    E: ("EndpointsConfigDump", "dynamic_endpoint_configs", "endpoint_config"),
    L: ("ListenersConfigDump", "dynamic_listeners", "active_state.listener"),
    R: ("RoutesConfigDump", "dynamic_route_configs", "route_config"),
}


def envoy_holds(dump: dict[str, Any], rtype: ResourceType) -> dict[str, tuple[Any, str]]:
    """name -> (decoded message, version_info) of one type in a /config_dump."""
    section, key, field = DUMP[rtype]
    config = next(c for c in dump["configs"] if c["@type"].endswith("." + section))
    out = {}
    for entry in config.get(key, ()):
        holder = entry
        for part in field.split(".")[:-1]:
            holder = holder.get(part, {})
        raw = holder.get(field.split(".")[-1])
        if raw is None:
            continue  # e.g. a listener still warming
        raw = {k: v for k, v in raw.items() if k != "@type"}
        msg = json_format.ParseDict(raw, rtype_message(rtype))
        name = msg.cluster_name if rtype is E else msg.name
        out[name] = (msg, holder.get("version_info", entry.get("version_info", "")))
    return out


def rtype_message(rtype: ResourceType) -> Any:
    return MESSAGES[rtype]()


def names(dump: dict[str, Any], rtype: ResourceType) -> set[str]:
    held = envoy_holds(dump, rtype)
    if rtype is E:  # Envoy lists the endpoints of its static clusters too: only EDS ones
        clusters = envoy_holds(dump, C)
        return {n for n in held if n in clusters and clusters[n][0].type == EDS}
    return set(held)


def addresses(cla: Any) -> set[tuple[str, int]]:
    return {
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for group in cla.endpoints
        for e in group.lb_endpoints
    }


def mesh(local: int) -> list[dict[str, Any]]:
    deps = [{"service": "reviews", "localAddress": CLIENT, "localPort": local}]
    return [
        service("web"),
        service("reviews", 9080),
        workload("web-1", "web", CLIENT, free_port(CLIENT), 8080, dependencies=deps),
        workload("reviews-1", "reviews", "127.0.0.3", 15001, 8080, labels={"version": "v1"}),
        workload("reviews-2", "reviews", "127.0.0.4", 15001, 8080, labels={"version": "v2"}),
        route("reviews", "reviews", split("reviews", {"v1": 80, "v2": 20})),
    ]


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_fake_client_holds_what_envoy_holds(tmp_path: Path, delta: bool) -> None:
    async with running_control_plane(tmp_path) as app:
        await apply_manifests(app, mesh(free_port(CLIENT)), wait=False)
        async with (
            mesh_envoy(app, WEB, delta=delta) as envoy,
            connect(WEB, app.xds_addr, delta=delta) as client,
        ):

            def synced(c: AdsClient) -> bool:
                snap = app.plane.cache.get(WEB.node_id)
                return (
                    snap is not None
                    and all(c.resources(t).keys() == snap.of(t).keys() for t in ResourceType)
                    and not c.protocol.warming
                )

            await client.wait_for(synced, timeout=30, what="the fake client in sync")

            def same_names(dump: dict[str, Any]) -> bool:
                # Envoy dumps no endpoints for its bootstrap's static EDS cluster (the
                # local one, here empty); the fake holds it as it asked for it
                static = client.protocol.static_eds
                return all(names(dump, t) == set(client.resources(t)) - static for t in DUMP)

            async def envoy_in_sync() -> bool:
                return same_names(await envoy.config_dump(include_eds=True))

            await envoy.wait_for(envoy_in_sync, timeout=30, what="Envoy holding the same names")
            dump = await envoy.config_dump(include_eds=True)
            for t in (C, L, R):  # as received: the same versions and the same messages
                theirs = envoy_holds(dump, t)
                ours = client.resources(t)
                assert {n: v for n, (_, v) in theirs.items()} == client.versions(t), t
                for name, (msg, _) in theirs.items():
                    # as JSON: map fields (a Struct in a local reply format) serialise in
                    # no fixed order inside an Any, so equal messages may differ in bytes
                    assert json_format.MessageToDict(msg) == json_format.MessageToDict(
                        ours[name].message
                    ), (t, name)
            # Envoy dumps endpoints as it rebuilt them (no version, defaults filled in, static
            # clusters too): compare the EDS clusters' endpoint addresses
            theirs = envoy_holds(dump, E)
            for name, held in client.resources(E).items():
                if name in client.protocol.static_eds:
                    # local|default/web: empty, no policy shares a limit across web's
                    # instances (Envoy dumps it nowhere)
                    assert addresses(held.message) == set(), name
                    continue
                assert addresses(theirs[name][0]) == addresses(held.message) != set(), name
            assert "local|default/web" in client.resources(E)
            assert client.counters.nacks == 0
            assert client.counters.acks == client.counters.responses >= 4
            assert client.counters.bytes_received > 0


async def test_many_clients_share_one_channel_and_close_cleanly(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path) as app:
        await apply_manifests(app, mesh(free_port(CLIENT)), wait=False)
        channel = open_channel(app.xds_addr)
        try:
            async with contextlib.AsyncExitStack() as stack:
                clients = [
                    await stack.enter_async_context(connect(WEB, channel=channel, delta=i % 2 == 1))
                    for i in range(6)
                ]
                for c in clients:
                    await c.wait_for_resources(R, ["outbound|default/reviews|http"], timeout=30)
                assert len({frozenset(c.versions(C).items()) for c in clients[1::2]}) == 1
                assert app.plane.cache.connected() == [WEB]
            await wait_until(lambda: app.plane.cache.connected() == [], what="streams closed")
            assert all(c.closed and c.error is None for c in clients)
        finally:
            await channel.close()
