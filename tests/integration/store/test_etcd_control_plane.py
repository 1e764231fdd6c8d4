"""``gossamer control-plane --store etcd://...`` keeps its resources in a real etcd and
serves real Envoys their configuration from it; a write through the API reaches traffic
(the plane's watch of the etcd store)."""

from __future__ import annotations

from pathlib import Path

import httpx
from tests.integration.store.etcd_planes import answered_by, cli_control_plane, etcd_marks

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.store.etcd import EtcdStore
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import admin_token
from gossamer.testing.etcd import EtcdServer
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity

pytestmark = etcd_marks(None)

CLIENT, SERVER = "127.0.0.2", "127.0.0.3"
WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1")


async def test_a_control_plane_on_etcd_serves_envoy(tmp_path: Path) -> None:
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
        ):
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
                workload("reviews-1", "reviews", SERVER, free_port(SERVER), v1.address[1]),
            ]

            async def backend() -> str | None:
                return await answered_by(c, f"http://{CLIENT}:{local}/")

            async def reaches(name: str) -> bool:
                return await backend() == name

            def envoy(p: ProxyIdentity) -> EnvoyProcess:
                admin = ("127.0.0.1", free_port())
                return EnvoyProcess(
                    ads_bootstrap(
                        p, ("127.0.0.1", xds), admin, metadata={"admin": f"127.0.0.1:{admin[1]}"}
                    )
                )

            async with cli_control_plane(data, etcd.url, api, xds):
                c.headers["Authorization"] = f"Bearer {admin_token(data)}"
                r = await c.post(f"{base}/v1/apply", json={"manifests": manifests})
                assert r.status_code == 200, r.text
                async with envoy(WEB), envoy(REVIEWS):
                    await wait_until(
                        lambda: reaches("reviews-1"), timeout=60, what="traffic via etcd"
                    )
                    # a change through the API reaches traffic: reviews-1 replaced by reviews-2
                    moved = workload(
                        "reviews-1", "reviews", SERVER, free_port(SERVER), v2.address[1]
                    )
                    r = await c.post(f"{base}/v1/apply", json={"manifests": [moved]})
                    assert r.status_code == 200, r.text
                    await wait_until(
                        lambda: reaches("reviews-2"), timeout=30, what="the change applied"
                    )
            # the resources live in etcd (and nowhere in the data dir)
            assert not (data / "gossamer.db").exists()
            async with await EtcdStore.open(etcd.url) as store:
                workloads, _ = await store.list(kind="Workload")
                assert sorted(w.key.name for w in workloads) == ["reviews-1", "web-1"]
                assert (data / "gossamer.etcd.id").read_text().count(store.store_id) == 1
    finally:
        await etcd.stop()
