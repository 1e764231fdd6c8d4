"""A config Envoy rejects for a reason no validator can foresee: a port another process holds."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import (
    apply_manifests,
    apply_yaml,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity
from gossamer.xds.status import ProxyStatus

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow]

CLIENT = "127.0.0.2"


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_nack_is_reported_not_looped_and_recovers(tmp_path: Path, delta: bool) -> None:
    good, blocked = free_port(CLIENT), free_port(CLIENT)
    holder = socket.socket()
    holder.bind((CLIENT, blocked))
    holder.listen(1)
    web = ProxyIdentity("sidecar", "default", "web-1")
    deps = [{"service": "reviews", "localAddress": CLIENT, "localPort": good}]
    try:
        async with (
            HttpBackend("reviews-v1", host="127.0.0.3") as v1,
            HttpBackend("ratings-v1", host="127.0.0.4") as ratings,
            running_control_plane(tmp_path) as app,
        ):
            base = [
                service("web"),
                service("reviews", 9080),
                service("ratings", 9081),
                workload(
                    "reviews-1", "reviews", "127.0.0.3", free_port("127.0.0.3"), v1.address[1]
                ),
                workload(
                    "ratings-1", "ratings", "127.0.0.4", free_port("127.0.0.4"), ratings.address[1]
                ),
            ]
            await apply_manifests(
                app,
                [*base, workload("web-1", "web", CLIENT, free_port(CLIENT), 1, dependencies=deps)],
                wait=False,
            )
            names = ("web-1", "reviews-1", "ratings-1")
            envoys = [
                mesh_envoy(app, ProxyIdentity("sidecar", "default", n), delta=delta) for n in names
            ]
            async with envoys[0] as envoy, envoys[1], envoys[2], httpx.AsyncClient() as client:

                async def ok(port: int) -> bool:
                    try:
                        return (await client.get(f"http://{CLIENT}:{port}/")).status_code == 200
                    except httpx.TransportError:
                        return False

                await wait_until(lambda: ok(good), timeout=30, what="traffic to reviews")

                # ratings gets a local listener on a port another process holds
                with_blocked = [
                    *deps,
                    {"service": "ratings", "localAddress": CLIENT, "localPort": blocked},
                ]
                await apply_manifests(
                    app,
                    [
                        workload(
                            "web-1", "web", CLIENT, free_port(CLIENT), 1, dependencies=with_blocked
                        )
                    ],
                    wait=False,
                )

                def status() -> object:
                    return next(s for s in app.plane.proxy_status() if s.node_id == web.node_id)

                rejected = await wait_until(
                    lambda: status().state == "rejected",
                    timeout=30,
                    what="the NACK to show in proxy status",
                )
                assert rejected
                listeners = next(t for t in status().types if t.type == "listeners")
                assert listeners.last_nack is not None and listeners.last_nack.message
                assert listeners.acked_version != listeners.sent_version

                # no re-push loop: a handful of back-off retries at most
                pushes = app.plane.monitor.pushes.labels("listeners")
                before = pushes._value.get()
                stats_before = await envoy.stats("listener_manager.lds.update_rejected")
                await wait_until(lambda: ok(good), timeout=10)  # traffic keeps flowing
                # An observation window, not a wait for readiness: a re-push loop would send
                # hundreds of responses in it, back-off sends at most a few.
                await asyncio.sleep(2.0)
                assert pushes._value.get() - before <= 4
                stats_after = await envoy.stats("listener_manager.lds.update_rejected")
                assert sum(stats_after.values()) - sum(stats_before.values()) <= 4
                assert await ok(good)

                # the cause goes away: the proxy gets back in sync by itself
                holder.close()
                await wait_until(
                    lambda: status().state == "synced",
                    timeout=60,
                    what="the proxy to be back in sync",
                )
                await wait_until(lambda: ok(blocked), timeout=30, what="the new listener")
    finally:
        holder.close()


def _edge(backend: tuple[str, int], port: int) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: shop}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: shop-1}}
spec: {{service: shop, address: {backend[0]}, sidecar: false, ports: [{{port: {backend[1]}}}]}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{address: {CLIENT}, port: {port}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: shop}}]}}]
"""


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_reverting_a_rejected_change_clears_the_nack(tmp_path: Path, delta: bool) -> None:
    """A Gateway moved to a held port (NACK) and moved back: the status follows Envoy."""
    good, blocked = free_port(CLIENT), free_port(CLIENT)
    holder = socket.socket()
    holder.bind((CLIENT, blocked))
    holder.listen(1)
    edge = ProxyIdentity("gateway", "default", "edge")
    try:
        async with (
            HttpBackend("shop-1", host="127.0.0.3") as shop,
            running_control_plane(tmp_path) as app,
        ):
            await apply_yaml(app, _edge(shop.address, good), wait=False)
            async with mesh_envoy(app, edge, delta=delta) as envoy, httpx.AsyncClient() as client:

                async def ok() -> bool:
                    try:
                        return (await client.get(f"http://{CLIENT}:{good}/")).status_code == 200
                    except httpx.TransportError:
                        return False

                def status() -> ProxyStatus:
                    return next(s for s in app.plane.proxy_status() if s.node_id == edge.node_id)

                await wait_until(ok, timeout=30, what="traffic through the gateway")
                await wait_until(lambda: status().state == "synced", timeout=30, what="sync")

                await apply_yaml(app, _edge(shop.address, blocked), wait=False)
                await wait_until(lambda: status().state == "rejected", timeout=30, what="the NACK")
                rejected = await envoy.stats("listener_manager.lds.update_rejected")

                # the original again: Envoy confirms it runs it, and the status says so
                await apply_yaml(app, _edge(shop.address, good), wait=True)
                assert status().state == "synced", status()
                listeners = next(t for t in status().types if t.type == "listeners")
                assert listeners.last_nack is None
                assert listeners.sent_version == listeners.acked_version
                assert await ok()
                after = await envoy.stats("listener_manager.lds.update_rejected")
                assert sum(after.values()) == sum(rejected.values())  # nothing rejected since

                # and stays so across a later change
                shop_2 = _edge(shop.address, good).replace(
                    "rules: [{destinations: [{service: shop}]}]",
                    "rules: [{matches: [{path: {prefix: /x}}], destinations: [{service: shop}]},"
                    " {destinations: [{service: shop}]}]",
                )
                await apply_yaml(app, shop_2, wait=True)
                assert status().state == "synced", status()
                assert await ok()
    finally:
        holder.close()


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_revert_undoes_what_envoy_applied_of_a_rejected_response(
    tmp_path: Path, delta: bool
) -> None:
    """Envoy applies the valid listeners of a response it rejects: after the revert it runs
    exactly the original again, not the original plus the rejected change's good half."""
    good, moved, blocked = free_port(CLIENT), free_port(CLIENT), free_port(CLIENT)
    holder = socket.socket()
    holder.bind((CLIENT, blocked))
    holder.listen(1)
    web = ProxyIdentity("sidecar", "default", "web-1")
    inbound = free_port(CLIENT)

    def web_1(*deps: tuple[str, int]) -> dict[str, object]:
        return workload(
            "web-1",
            "web",
            CLIENT,
            inbound,
            1,
            dependencies=[{"service": s, "localAddress": CLIENT, "localPort": p} for s, p in deps],
        )

    try:
        async with (
            HttpBackend("reviews-v1", host="127.0.0.3") as v1,
            running_control_plane(tmp_path) as app,
        ):
            original = [
                service("web"),
                service("reviews", 9080),
                service("ratings", 9081),
                workload(
                    "reviews-1", "reviews", "127.0.0.3", free_port("127.0.0.3"), v1.address[1]
                ),
                web_1(("reviews", good)),
            ]
            await apply_manifests(app, original, wait=False)
            async with (
                mesh_envoy(app, web, delta=delta) as envoy,
                mesh_envoy(app, ProxyIdentity("sidecar", "default", "reviews-1"), delta=delta),
            ):

                def status() -> ProxyStatus:
                    return next(s for s in app.plane.proxy_status() if s.node_id == web.node_id)

                async def ports() -> set[int]:
                    return {p for _, p in (await envoy.listener_addresses()).values()}

                await wait_until(lambda: status().state == "synced", timeout=30, what="sync")
                assert await ports() == {inbound, good}

                # reviews moves (valid) and ratings asks for a held port (refused), at once
                await apply_manifests(
                    app, [web_1(("reviews", moved), ("ratings", blocked))], wait=False
                )
                await wait_until(lambda: status().state == "rejected", timeout=30, what="NACK")
                assert moved in await ports()  # Envoy applied the valid half

                await apply_manifests(app, original, wait=True)
                assert status().state == "synced", status()
                assert await ports() == {inbound, good}
    finally:
        holder.close()
