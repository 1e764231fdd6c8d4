"""Two control-plane replicas on one etcd run the singletons on one of them (docs/store.md,
"Leader"): both name the same leader; only the leader fetches a ``jwks.uri`` issuer's
keys, and every replica serves what it stored; the leader SIGKILLed, the survivor leads
once the dead one's lease expires and takes the fetching over (a key rotation at the
provider reaches the store through it); a root rotation is refused on etcd."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from tests.integration.store.etcd_planes import ETCD_PLANES, cli_control_plane

from gossamer.polling import wait_until
from gossamer.testing.controlplane import admin_token
from gossamer.testing.etcd import EtcdServer
from gossamer.testing.identity_provider import JwksServer
from gossamer.testing.jwt_tokens import TokenIssuer
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION

pytestmark = ETCD_PLANES

ISSUER = "https://idp.shop.example"
A, B = TokenIssuer(ISSUER, kid="a"), TokenIssuer(ISSUER, kid="b")


def mesh(idp: JwksServer) -> dict[str, Any]:
    jwks = {"uri": idp.uri, "ca": idp.ca_pem, "refreshInterval": "1s"}
    issuer = {"issuer": ISSUER, "audiences": ["shop"], "jwks": jwks}
    spec = {"trustDomain": "shop.local", "authentication": {"jwt": [issuer]}}
    return {
        "apiVersion": API_VERSION,
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": spec,
    }


async def test_one_replica_runs_the_singletons_and_the_survivor_takes_over(
    tmp_path: Path,
) -> None:
    api_a, api_b, xds_a, xds_b = (free_port() for _ in range(4))
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with (
            JwksServer(A.jwks()) as idp,
            httpx.AsyncClient(timeout=5, trust_env=False) as c,
            cli_control_plane(tmp_path / "a", etcd.url, api_a, xds_a) as a,
            cli_control_plane(tmp_path / "b", etcd.url, api_b, xds_b) as b,
        ):
            c.headers["Authorization"] = f"Bearer {admin_token(tmp_path / 'a')}"
            apis = {api_a: a, api_b: b}

            async def plane(api: int) -> dict[str, Any]:
                r = await c.get(f"http://127.0.0.1:{api}/v1/statistics")
                assert r.status_code == 200, r.text
                return dict(r.json()["plane"])

            async def issuer(api: int) -> dict[str, Any]:
                r = await c.get(f"http://127.0.0.1:{api}/v1/describe/mesh")
                assert r.status_code == 200, r.text
                return dict(r.json()["issuers"][0])

            async def one_leader() -> int | None:
                planes = {api: await plane(api) for api in apis}
                leading = [api for api, p in planes.items() if p["leading"]]
                names = {p["leader"] for p in planes.values()}
                return leading[0] if len(leading) == 1 and len(names) == 1 else None

            leader = await wait_until(one_leader, timeout=30, what="one leader both name")
            follower = api_b if leader == api_a else api_a
            r = await c.post(
                f"http://127.0.0.1:{follower}/v1/apply", json={"manifests": [mesh(idp)]}
            )
            assert r.status_code == 200, r.text

            async def kids(api: int) -> list[str] | None:
                keys = (await issuer(api))["keys"]
                return None if keys is None else list(keys["kids"])

            # the leader fetched and stored the keys; both replicas serve them
            for api in apis:
                await wait_until(lambda a=api: _is(kids(a), ["a"]), timeout=30, what="key a")
            assert (await issuer(leader))["fetch"]["lastSuccess"] is not None
            followed = await issuer(follower)  # it fetches nothing itself, and says who does
            assert followed["fetch"] is None
            assert followed["fetchedBy"] == f"replica {(await plane(leader))['leader']}"

            # a root rotation cannot run on replicas: refused, nothing changed
            r = await c.post(f"http://127.0.0.1:{leader}/v1/ca/rotation")
            assert r.status_code == 409, r.text
            assert "cannot run on a control plane whose store is etcd" in r.text

            # the leader dies: the survivor leads once its lease expires (10 s) and
            # fetches from then on (the provider's rotation to key b reaches the store)
            await apis[leader].kill()
            idp.keys = B.jwks()

            async def survivor_leads() -> bool:
                return bool((await plane(follower))["leading"])

            await wait_until(survivor_leads, timeout=60, what="the survivor to lead")
            await wait_until(lambda: _is(kids(follower), ["b"]), timeout=30, what="key b")
            survived = await issuer(follower)
            assert survived["fetch"]["lastSuccess"] is not None and "fetchedBy" not in survived
    finally:
        await etcd.stop()


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)
