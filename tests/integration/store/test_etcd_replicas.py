"""Two control-plane replicas on one etcd are peers for the API and xDS (issue 15): a write
acknowledged by one reaches the Envoys connected to the other, and when the replica the
Envoys are connected to is SIGKILLed under load they move to the survivor with 0 failed
requests and keep taking changes written there.

The Envoys know both replicas (``ads_bootstrap`` with two xDS addresses: one endpoint
each in the ``gossamer-xds`` cluster, round robin): sidecars started from such a
bootstrap, and ``gossamer gateway --xds-addr A,B`` as an operator runs it."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from tests.integration.store.etcd_planes import ETCD_PLANES, Traffic, answered_by, cli_control_plane

from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import admin_token
from gossamer.testing.etcd import EtcdServer
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import API_VERSION, ProxyIdentity

pytestmark = ETCD_PLANES

CLIENT, SERVER = "127.0.0.2", "127.0.0.3"
WEB = ProxyIdentity("sidecar", "default", "web-1")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1")
CONNECTED = "control_plane.connected_state"


async def test_envoys_move_to_the_surviving_replica_and_take_its_writes(tmp_path: Path) -> None:
    api_a, api_b, xds_a, xds_b = free_port(), free_port(), free_port(), free_port()
    local = free_port(CLIENT)
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
            dependency = {"service": "reviews", "localAddress": CLIENT, "localPort": local}
            web = workload("web-1", "web", CLIENT, free_port(CLIENT), 1, dependencies=[dependency])

            def reviews(backend: HttpBackend) -> dict[str, object]:
                return workload("reviews-1", "reviews", SERVER, reviews_port, backend.address[1])

            async def backend() -> str | None:
                return await answered_by(traffic, f"http://{CLIENT}:{local}/")

            async def reaches(name: str) -> bool:
                return await backend() == name

            async def apply(api: int, manifests: list[dict[str, object]]) -> None:
                r = await c.post(f"http://127.0.0.1:{api}/v1/apply", json={"manifests": manifests})
                assert r.status_code == 200, r.text

            async def serving(api: int) -> set[str]:
                """The proxies connected to the replica on ``api``."""
                r = await c.get(f"http://127.0.0.1:{api}/v1/proxies")
                assert r.status_code == 200, r.text
                return {p["name"] for p in r.json()["items"] if p["connected"]}

            def envoy(p: ProxyIdentity) -> EnvoyProcess:
                admin = ("127.0.0.1", free_port())
                replicas = [("127.0.0.1", xds_a), ("127.0.0.1", xds_b)]
                metadata = {"admin": f"127.0.0.1:{admin[1]}"}
                return EnvoyProcess(ads_bootstrap(p, replicas, admin, metadata=metadata))

            async with cli_control_plane(tmp_path / "a", etcd.url, api_a, xds_a) as a:
                # one operator credential for both: tokens live in the store
                c.headers["Authorization"] = f"Bearer {admin_token(tmp_path / 'a')}"
                await apply(api_a, [service("web"), service("reviews", 9080), web, reviews(v1)])
                # B is not up yet: both Envoys end up on A
                async with envoy(WEB) as web_envoy, envoy(REVIEWS) as reviews_envoy:
                    envoys = (web_envoy, reviews_envoy)
                    await wait_until(lambda: reaches("reviews-1"), timeout=60, what="traffic")
                    async with cli_control_plane(tmp_path / "b", etcd.url, api_b, xds_b):
                        assert await serving(api_a) == {"web-1", "reviews-1"}
                        # a write to B reaches the Envoys on A
                        await apply(api_b, [reviews(v2)])
                        await wait_until(
                            lambda: reaches("reviews-2"), timeout=30, what="B's write via A"
                        )
                        load = Traffic(backend, {"reviews-1", "reviews-2"})
                        async with load.flowing():
                            await load.more(20)
                            await a.kill()

                            # both Envoys reconnect, to B
                            async def on_b() -> bool:
                                return await serving(api_b) == {"web-1", "reviews-1"}

                            await wait_until(on_b, timeout=60, what="both Envoys on B")
                            for e in envoys:
                                await e.wait_for_stat(CONNECTED, 1, timeout=30)
                            # and take B's writes
                            await apply(api_b, [reviews(v1)])
                            await wait_until(
                                lambda: reaches("reviews-1"), timeout=30, what="B's write"
                            )
                            await load.more(20)
                        assert load.failed == 0, vars(load)
    finally:
        await etcd.stop()


def _edge(gw_port: int, backend: tuple[str, int]) -> list[dict[str, object]]:
    """A gateway ``edge`` on ``gw_port`` sending everything to ``shop`` (one plain backend)."""

    def manifest(kind: str, name: str, spec: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}

    shop = {"service": "shop", "address": backend[0], "sidecar": False}
    return [
        service("shop"),
        manifest("Workload", "shop-1", {**shop, "ports": [{"port": backend[1]}]}),
        manifest("Gateway", "edge", {"port": gw_port}),
        manifest(
            "Route",
            "edge",
            {"gateways": ["edge"], "rules": [{"destinations": [{"service": "shop"}]}]},
        ),
    ]


async def test_a_gateway_given_both_replicas_fails_over_under_load(tmp_path: Path) -> None:
    api_a, api_b, xds_a, xds_b, gw_port = (free_port() for _ in range(5))
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with (
            HttpBackend("shop-1", host=SERVER) as v1,
            HttpBackend("shop-2", host=SERVER) as v2,
            httpx.AsyncClient(timeout=5, trust_env=False) as c,
            httpx.AsyncClient(timeout=5, trust_env=False) as traffic,
            cli_control_plane(tmp_path / "a", etcd.url, api_a, xds_a) as a,
            cli_control_plane(tmp_path / "b", etcd.url, api_b, xds_b) as b,
        ):
            c.headers["Authorization"] = f"Bearer {admin_token(tmp_path / 'a')}"
            r = await c.post(
                f"http://127.0.0.1:{api_a}/v1/apply", json={"manifests": _edge(gw_port, v1.address)}
            )
            assert r.status_code == 200, r.text
            argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()", "gateway"]
            argv += ["--name", "edge", "--server", f"http://127.0.0.1:{api_a}"]
            argv += ["--xds-addr", f"127.0.0.1:{xds_a},127.0.0.1:{xds_b}"]
            argv += ["--workdir", str(tmp_path / "gw"), "--drain-seconds", "1"]
            gateway = ManagedProcess(argv, log_path=tmp_path / "gateway.log", name="gateway")

            async def backend() -> str | None:
                return await answered_by(traffic, f"http://127.0.0.1:{gw_port}/")

            async def reaches(name: str) -> bool:
                return await backend() == name

            async def serving(api: int) -> bool:
                r = await c.get(f"http://127.0.0.1:{api}/v1/proxies")
                return any(p["name"] == "edge" and p["connected"] for p in r.json()["items"])

            await gateway.start()
            try:
                await wait_until(lambda: reaches("shop-1"), timeout=60, what="the gateway")
                # (Envoy may serve a moment before its supervisor's "Envoy running" line)
                line = f"xDS 127.0.0.1:{xds_a},127.0.0.1:{xds_b})"
                await wait_until(lambda: line in gateway.log_tail(200), timeout=30, what=line)
                on_a = await serving(api_a)
                dead, (survivor, other) = (a, (api_b, b)) if on_a else (b, (api_a, a))
                load = Traffic(backend, {"shop-1", "shop-2"})
                async with load.flowing():
                    await load.more(20)
                    await dead.kill()  # the replica the gateway's Envoy streams from
                    await wait_until(
                        lambda: serving(survivor), timeout=60, what="the gateway moved"
                    )
                    assert other.running
                    moved = _edge(gw_port, v2.address)[1]
                    r = await c.post(
                        f"http://127.0.0.1:{survivor}/v1/apply", json={"manifests": [moved]}
                    )
                    assert r.status_code == 200, r.text
                    await wait_until(
                        lambda: reaches("shop-2"), timeout=30, what="the survivor's write"
                    )
                assert load.failed == 0, vars(load)
            finally:
                await gateway.stop()
    finally:
        await etcd.stop()
