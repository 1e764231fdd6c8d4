"""A real control plane with watched sidecars for ``bench/ngac_compile.py`` part (b):
simulated ones (``AdsClient`` over gRPC on one shared channel) and, unless ``--no-envoy``,
one real Envoy, each the sidecar of a service the one edge reaches. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from ngac_policy import MOVER, NS, ON_TEAM, service

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.model import parse_manifest
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing import ads_client
from gossamer.testing.ads_client import AdsClient
from gossamer.testing.controlplane import api_client, mesh_envoy, running_control_plane
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import ResourceType

#: the inbound route table (RDS) of a service whose HTTP port is named ``http``
INBOUND = "inbound|http"
_ROUTE = ResourceType.ROUTE


def _holds_mover(data: bytes) -> bool:
    return MOVER.encode() in data


class Sidecars:
    def __init__(
        self,
        app: ControlPlaneApp,
        args: argparse.Namespace,
        watched: int,
        stack: contextlib.AsyncExitStack,
        workdir: Path,
    ) -> None:
        self.app, self.args, self.watched, self.stack, self.workdir = (
            app,
            args,
            watched,
            stack,
            workdir,
        )
        self.clients: list[AdsClient] = []
        #: how long each change's request took to return (stored, before any push)
        self.returned: list[float] = []
        self.envoy: EnvoyProcess | None = None
        self.envoy_node = ""
        self.channel = ads_client.open_channel(app.xds_addr)
        self.api = api_client(app)

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, tmp: Path, args: argparse.Namespace, watched: int, deadline: float
    ) -> AsyncIterator[Sidecars]:
        async with running_control_plane(tmp / "cp") as app, contextlib.AsyncExitStack() as stack:
            mesh = cls(app, args, watched, stack, tmp)
            stack.push_async_callback(mesh.channel.close)
            stack.push_async_callback(mesh.api.aclose)
            yield mesh

    @staticmethod
    def _rest(deadline: float) -> float:
        rest = deadline - time.monotonic()
        if rest <= 0:
            raise TimeoutError("the bench's --budget is spent")
        return rest

    async def apply(self, manifests: Sequence[dict[str, Any]], deadline: float = 0.0) -> None:
        """Store ``manifests`` through the control plane (its admission and SQLite); the
        plane publishes them as after any apply (no ``--wait``: ACKs are timed here)."""
        await self.app.plane.apply([parse_manifest(m) for m in manifests], wait=False)

    async def batch(self, on: bool) -> None:
        """The same edge as an administrative batch, through the REST API as the admin."""
        op = "assign" if on else "deassign"
        body = {"commands": [{"op": op, "child": MOVER, "parents": [ON_TEAM]}]}
        response = await self.api.post("/v1/authz/commands", json=body)
        response.raise_for_status()

    async def start_sidecars(self, deadline: float) -> None:
        sims = self.watched - (0 if self.args.no_envoy else 1)
        for k in range(sims):
            proxy = ProxyIdentity("sidecar", NS, f"{service(k)}-1")
            client = await self.stack.enter_async_context(
                ads_client.connect(proxy, channel=self.channel)
            )
            self.clients.append(client)
        if not self.args.no_envoy:
            proxy = ProxyIdentity("sidecar", NS, f"{service(sims)}-1")
            self.envoy_node = proxy.node_id
            envoy = mesh_envoy(self.app, proxy, workdir=self.workdir)
            self.envoy = await self.stack.enter_async_context(envoy)
        # the API client's TLS connection is opened now, not inside the first timed batch
        (await self.api.get("/v1/authz/statistics")).raise_for_status()
        for client in self.clients:
            await client.wait_for(
                lambda c: INBOUND in c.resources(_ROUTE), self._rest(deadline), "inbound routes"
            )
        if self.envoy_node:
            await wait_until(
                lambda: self._envoy_acked(False), timeout=self._rest(deadline), interval=0.05
            )

    def _sent(self) -> bytes | None:
        """The inbound route table the control plane holds for the real Envoy now."""
        snap = self.app.plane.cache.get(self.envoy_node)
        if snap is None:
            return None
        found = snap.resources[_ROUTE].get(INBOUND)
        return None if found is None else bytes(found.resource.value)

    def _envoy_acked(self, on: bool) -> bool:
        snap = self.app.plane.cache.get(self.envoy_node)
        sent = self._sent()
        return (
            snap is not None
            and sent is not None
            and _holds_mover(sent) == on
            and self.app.plane.monitor.synced(self.envoy_node, snap)
        )

    async def one_change(
        self, change: Callable[[bool], Awaitable[None]], on: bool, within: float
    ) -> tuple[float, float | None]:
        """Make the edge ``on`` (or not); return how long until every simulated sidecar
        ACKed its new inbound routes, and until the real Envoy did (None without one)."""
        start = time.perf_counter()
        await change(on)
        self.returned.append(time.perf_counter() - start)

        def updated(c: AdsClient) -> bool:
            held = c.resources(_ROUTE).get(INBOUND)
            return held is not None and _holds_mover(held.message.SerializeToString()) == on

        async def sim(c: AdsClient) -> float:
            await c.wait_for(updated, within, f"the edge {'on' if on else 'off'}", interval=0.01)
            return time.perf_counter() - start

        async def real() -> float | None:
            if not self.envoy_node:
                return None
            loop = asyncio.get_running_loop()
            end = loop.time() + within
            while True:
                progress = self.app.plane.monitor.progress_event()
                if self._envoy_acked(on):
                    return time.perf_counter() - start
                if loop.time() > end:
                    raise TimeoutError(f"the real Envoy did not ACK the edge within {within} s")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.05):
                        await progress.wait()

        async with asyncio.TaskGroup() as tg:
            envoy = tg.create_task(real())
            sims = [tg.create_task(sim(c)) for c in self.clients]
        return max(s.result() for s in sims), envoy.result()

    async def envoy_holds_what_was_sent(self) -> bool:
        """Whether the real Envoy's ``/config_dump`` inbound table is the RDS resource the
        control plane sent it (compared decoded, as JSON)."""
        from envoy.config.route.v3 import route_pb2

        assert self.envoy is not None
        sent = self._sent()
        dump = await self.envoy.admin.config_dump(resource="dynamic_route_configs")
        for entry in dump["configs"]:
            config = dict(entry["route_config"])
            if config.get("name") == INBOUND:
                config.pop("@type", None)
                held = json_format.ParseDict(config, route_pb2.RouteConfiguration())
                # as JSON: an Any inside (the RBAC per route) holds maps serialised in no
                # fixed order, so equal tables may differ in bytes
                sent_table = route_pb2.RouteConfiguration.FromString(sent or b"")
                return json_format.MessageToDict(held) == json_format.MessageToDict(sent_table)
        return False
