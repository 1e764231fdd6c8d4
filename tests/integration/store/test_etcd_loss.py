"""A control plane whose etcd stops answering: ``/readyz`` 503 naming etcd, writes refused at
once with nothing changed, after ``--store-loss-grace`` its Envoys' xDS streams closed
while their traffic goes on (0 failed requests); etcd back: ready, writes accepted, and
the Envoys reconnect and get the change (issue 15)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from tests.integration.store.etcd_planes import Traffic, answered_by, cli_control_plane, etcd_marks

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import admin_token
from gossamer.testing.etcd import EtcdServer
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity

pytestmark = etcd_marks(420)

CLIENT, SERVER = "127.0.0.2", "127.0.0.3"
WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1")
GRACE = 3
CONNECTED = "control_plane.connected_state"


async def test_a_replica_that_loses_etcd_refuses_writes_and_closes_xds(tmp_path: Path) -> None:
    api, xds, local = free_port(), free_port(), free_port(CLIENT)
    data = tmp_path / "data"
    base = f"http://127.0.0.1:{api}"
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with (
            HttpBackend("reviews-1", host=SERVER) as v1,
            HttpBackend("reviews-2", host=SERVER) as v2,
            httpx.AsyncClient(timeout=5, trust_env=False) as c,
            httpx.AsyncClient(timeout=5, trust_env=False) as traffic,
        ):
            reviews_port = free_port(SERVER)
            manifests = [
                service("web"),
                service("reviews", 9080),
                workload(
                    "web-1",
                    "web",
                    CLIENT,
                    free_port(CLIENT),
                    1,
                    dependencies=[
                        {"service": "reviews", "localAddress": CLIENT, "localPort": local}
                    ],
                ),
                workload("reviews-1", "reviews", SERVER, reviews_port, v1.address[1]),
            ]
            moved = workload("reviews-1", "reviews", SERVER, reviews_port, v2.address[1])

            async def backend() -> str | None:
                return await answered_by(traffic, f"http://{CLIENT}:{local}/")

            async def reaches(name: str) -> bool:
                return await backend() == name

            def envoy(p: ProxyIdentity) -> EnvoyProcess:
                admin = ("127.0.0.1", free_port())
                return EnvoyProcess(
                    ads_bootstrap(
                        p, ("127.0.0.1", xds), admin, metadata={"admin": f"127.0.0.1:{admin[1]}"}
                    )
                )

            async def connected(e: EnvoyProcess) -> int:
                return (await e.stats(f"^{CONNECTED}$")).get(CONNECTED, -1)

            async def disconnected(e: EnvoyProcess) -> bool:
                return await connected(e) == 0

            async def readyz(status: int) -> httpx.Response | None:
                try:
                    r = await c.get(f"{base}/readyz")
                except httpx.TransportError:
                    return None
                return r if r.status_code == status else None

            async with cli_control_plane(
                data, etcd.url, api, xds, "--store-loss-grace", str(GRACE)
            ) as cp:
                c.headers["Authorization"] = f"Bearer {admin_token(data)}"
                r = await c.post(f"{base}/v1/apply", json={"manifests": manifests})
                assert r.status_code == 200, r.text
                async with envoy(WEB) as web, envoy(REVIEWS) as reviews:
                    await wait_until(
                        lambda: reaches("reviews-1"), timeout=60, what="traffic via etcd"
                    )
                    for e in (web, reviews):
                        await e.wait_for_stat(CONNECTED, 1, timeout=30)
                    load = Traffic(backend, {"reviews-1", "reviews-2"})
                    async with load.flowing():
                        await etcd.stop()
                        # /readyz: 503, naming etcd and since when
                        lost = await wait_until(lambda: readyz(503), timeout=30, what="readyz 503")
                        assert isinstance(lost, httpx.Response)
                        body = lost.json()
                        assert body["status"] == "store_unreachable", body
                        assert f"etcd at {etcd.url}" in body["detail"], body
                        assert "unreachable since" in body["detail"], body
                        # a write: refused at once, nothing changed
                        loop = asyncio.get_running_loop()
                        began = loop.time()
                        r = await c.post(f"{base}/v1/apply", json={"manifests": [moved]})
                        took = loop.time() - began
                        assert r.status_code == 503, r.text
                        assert "unreachable" in r.text and "nothing was changed" in r.text
                        assert took < 2.0, f"the refusal took {took:.2f}s"
                        # after the grace: both Envoys' streams closed, traffic goes on
                        for e in (web, reviews):
                            await e.wait_for(
                                lambda e=e: disconnected(e),
                                timeout=30,
                                what="the xDS stream closed",
                            )
                        await load.more(50)  # through Envoys without a control plane
                        assert await backend() == "reviews-1"
                        assert cp.running, cp.log_tail()
                        # etcd back: ready, the refused write was not made, a new one is
                        await etcd.start()
                        await wait_until(lambda: readyz(200), timeout=30, what="readyz 200")
                        r = await c.get(f"{base}/v1/resources/Workload/default/reviews-1")
                        assert r.status_code == 200, r.text
                        assert r.json()["spec"]["ports"][0]["appPort"] == v1.address[1]
                        r = await c.post(f"{base}/v1/apply", json={"manifests": [moved]})
                        assert r.status_code == 200, r.text
                        # within the ADS retry back-off's 4 s cap (Envoy's default: 30 s)
                        for e in (web, reviews):
                            await e.wait_for_stat(CONNECTED, 1, timeout=8)
                        await wait_until(
                            lambda: reaches("reviews-2"), timeout=60, what="the new write"
                        )
                    assert load.failed == 0, vars(load)
                    assert load.ok > 100, vars(load)
    finally:
        await etcd.stop()
