"""Agents that joined two control-plane replicas on one etcd (``gossamer agent join
--server A,B --xds A,B``). B starts once every sidecar's Envoy streams from A; when A
stops under load through a sidecar, 0 requests fail, every Envoy and both agents go on at
B, and a change written at B reaches the sidecars."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.integration.agent.agents import PACED, AgentHandle, Load, agents
from tests.integration.store.etcd_planes import answered_by, etcd_marks

from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp, create_app
from gossamer.server.settings import Settings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import admin_token, api_client
from gossamer.testing.etcd import EtcdServer
from gossamer.testing.mesh import route, service, split
from gossamer.testing.ports import free_port

pytestmark = etcd_marks(300, slow=True)

WEB_HOST, REVIEWS_HOST = "127.0.0.2", "127.0.0.3"
HOSTS = {"host-web", "host-reviews"}


@dataclass(frozen=True)
class Addresses:
    """Where a replica will answer (its API and plaintext xDS ports chosen up front)."""

    api: int
    xds: int

    @property
    def api_url(self) -> str:
        return f"https://127.0.0.1:{self.api}"

    @property
    def xds_addr(self) -> tuple[str, int]:
        return ("127.0.0.1", self.xds)


@contextlib.asynccontextmanager
async def replica(data: Path, store: str, at: Addresses) -> AsyncIterator[ControlPlaneApp]:
    settings = Settings(
        data,
        api_addr=("127.0.0.1", at.api),
        xds_addr=at.xds_addr,
        store=store,
        xds_tls="optional",
    )
    async with create_app(settings) as app:
        yield app


async def connected(app: ControlPlaneApp, token: str) -> set[str]:
    async with api_client(app, token=token) as c:
        r = await c.get("/v1/proxies")
    assert r.status_code == 200, r.text
    return {p["name"] for p in r.json()["items"] if p["connected"]}


async def test_sidecars_of_agents_move_to_the_surviving_replica(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    at_a, at_b = Addresses(free_port(), free_port()), Addresses(free_port(), free_port())
    try:
        async with (
            HttpBackend("reviews-v1", host=REVIEWS_HOST) as v1,
            HttpBackend("reviews-v2", host=REVIEWS_HOST) as v2,
            contextlib.AsyncExitStack() as replica_a,
            contextlib.AsyncExitStack() as replica_b,
        ):
            a = await replica_a.enter_async_context(replica(tmp_path / "a", etcd.url, at_a))
            token = admin_token(tmp_path / "a")  # tokens live in the store: B takes it too
            async with api_client(a) as c:
                mesh = [service("web"), service("reviews", 9080)]
                mesh.append(route("reviews", "reviews", split("reviews", {"v1": 100})))
                r = await c.post("/v1/apply", json={"manifests": mesh})
                assert r.status_code == 200, r.text
            # the hosts know both replicas; B is not up yet, so every Envoy streams from A
            web = AgentHandle(
                a, "host-web", WEB_HOST, tmp_path / "web",
                [{"name": "web-1", "service": "web", "appAddress": WEB_HOST,
                  "appPort": free_port(WEB_HOST), "dependencies": [{"service": "reviews"}]}],
                replicas=(at_a, at_b),
            )  # fmt: skip
            reviews = AgentHandle(
                a, "host-reviews", REVIEWS_HOST, tmp_path / "reviews",
                [{"name": f"reviews-{n}", "service": "reviews", "appAddress": REVIEWS_HOST,
                  "appPort": app.address[1], "labels": {"version": f"v{n}"}}
                 for n, app in ((1, v1), (2, v2))],
                replicas=(at_a, at_b),
            )  # fmt: skip
            async with agents(web, reviews), httpx.AsyncClient(timeout=5, trust_env=False) as probe:
                for h in (web, reviews):
                    await h.join()
                    await h.start()
                for h in (web, reviews):
                    await h.wait_running()
                env = await web.env()
                url = f"http://{env['REVIEWS_ADDR']}/"

                async def reaches(backend: str) -> bool:
                    return await answered_by(probe, url) == backend

                await wait_until(lambda: reaches("reviews-v1"), timeout=60, what="v1")
                proxies = {"web-1", "reviews-1", "reviews-2"}
                assert proxies <= await connected(a, token)
                (tmp_path / "b").mkdir(mode=0o700)
                shutil.copytree(tmp_path / "a" / "ca", tmp_path / "b" / "ca")  # one CA
                b = await replica_b.enter_async_context(replica(tmp_path / "b", etcd.url, at_b))
                load = Load(url, max_seconds=120, pace=PACED)
                async with _running(load):
                    await wait_until(lambda: load.ok > 20, timeout=30, what="load")
                    await replica_a.aclose()  # A stops under load

                    async def all_on_b() -> bool:
                        return proxies <= await connected(b, token)

                    await wait_until(all_on_b, timeout=60, what="every Envoy on B")
                    # a change written at B reaches the sidecars
                    async with api_client(b, token=token) as c:
                        moved = route("reviews", "reviews", split("reviews", {"v2": 100}))
                        r = await c.post("/v1/apply", json={"manifests": [moved]})
                        assert r.status_code == 200, r.text
                    await wait_until(lambda: reaches("reviews-v2"), timeout=30, what="v2")
                    ok = load.ok
                    await wait_until(lambda: load.ok > ok + 20, timeout=30, what="more")
                assert load.failed == [], load.failed[:5]
                # both agents go on at B: they heartbeat there and are active
                async with api_client(b, token=token) as c:

                    async def active_at_b() -> bool:
                        r = await c.get("/v1/agents")
                        states = {x["host"]: x["state"] for x in r.json()["items"]}
                        return states == dict.fromkeys(HOSTS, "active")

                    await wait_until(active_at_b, timeout=60, what="agents active at B")
                for h in (web, reviews):
                    assert h.process is not None and h.process.running, h.log()
    finally:
        await etcd.stop()


@contextlib.asynccontextmanager
async def _running(load: Load) -> AsyncIterator[None]:
    """``load`` runs inside the block."""
    task = asyncio.create_task(load.run())
    try:
        yield
    finally:
        load.stop()
        await task
