"""Two control-plane replicas on one etcd, written to at the same time: each replica's model
(what it translates for its proxies, and what ``describe`` reads) ends with every write
of both, none lost to the other's in-flight apply; and what only one may have (two
workloads on one address and port) is accepted by one replica only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from tests.integration.store.etcd_planes import ETCD_PLANES, cli_control_plane

from gossamer.polling import wait_until
from gossamer.testing.controlplane import admin_token
from gossamer.testing.etcd import EtcdServer
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port

pytestmark = ETCD_PLANES

WRITES = 15  # per replica
PAIRS = 10


@asynccontextmanager
async def replicas(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    """Two replicas on a new etcd: an operator's client and each replica's API URL."""
    api_a, api_b, xds_a, xds_b = (free_port() for _ in range(4))
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with (
            httpx.AsyncClient(timeout=60, trust_env=False) as c,
            cli_control_plane(tmp_path / "a", etcd.url, api_a, xds_a),
            cli_control_plane(tmp_path / "b", etcd.url, api_b, xds_b),
        ):
            c.headers["Authorization"] = f"Bearer {admin_token(tmp_path / 'a')}"
            yield c, f"http://127.0.0.1:{api_a}", f"http://127.0.0.1:{api_b}"
    finally:
        await etcd.stop()


async def test_concurrent_writes_to_both_replicas_reach_both_models(tmp_path: Path) -> None:
    async with replicas(tmp_path) as (c, a, b):

        async def apply(api: str, name: str, port: int, wait: bool) -> None:
            body: dict[str, Any] = {"manifests": [service(name, port)], "wait": wait}
            r = await c.post(f"{api}/v1/apply", json=body)
            assert r.status_code == 200, r.text

        # interleaved on both replicas; every third apply waits for its publish
        await asyncio.gather(
            *(
                apply(api, f"{tag}-{i}", 9000 + i, i % 3 == 0)
                for i in range(WRITES)
                for api, tag in ((a, "a"), (b, "b"))
            )
        )
        names = [f"{tag}-{i}" for i in range(WRITES) for tag in ("a", "b")]

        async def missing(api: str) -> list[str]:
            """The services the replica's model lacks: ``gossamer describe service`` reads
            the model, as translation does."""
            out = []
            for name in names:
                r = await c.get(f"{api}/v1/describe/services/default/{name}", params={"timeout": 1})
                assert r.status_code in (200, 404), r.text
                if r.status_code == 404:
                    out.append(name)
            return out

        for api in (a, b):
            # (the watch may bring the other replica's last writes in a moment later)
            await wait_until(
                lambda api=api: _none(missing(api)),
                timeout=15,
                what=f"the replica at {api} to hold every service stored",
            )


async def test_two_replicas_never_both_accept_one_address(tmp_path: Path) -> None:
    """Each pair: a workload on one address and port applied to each replica at once.
    Checked on its own model, each replica accepted its own; now exactly one is stored
    and the other refused, naming the one that has it."""
    async with replicas(tmp_path) as (c, a, b):
        body = {"manifests": [service("web", 8080)], "wait": True}
        r = await c.post(f"{a}/v1/apply", json=body)
        assert r.status_code == 200, r.text

        async def apply(api: str, name: str, address: str) -> httpx.Response:
            manifest = workload(name, "web", address, 15000, 8080)
            return await c.post(f"{api}/v1/apply", json={"manifests": [manifest]})

        for i in range(PAIRS):
            address = f"127.0.3.{i + 1}"
            answers = await asyncio.gather(apply(a, f"a-{i}", address), apply(b, f"b-{i}", address))
            codes = sorted(r.status_code for r in answers)
            assert codes[0] == 200 and codes[1] != 200, [r.text for r in answers]
            refused = next(r for r in answers if r.status_code != 200)
            assert f"{address}:15000 is already used by" in refused.text, refused.text
        r = await c.get(f"{a}/v1/resources/workloads")
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == PAIRS


async def _none(missing: Any) -> bool:
    return not await missing
