"""Strict mTLS across replicas: reviews' sidecar streams from replica A, web's (its caller)
from replica B. Alone, A saw no caller of reviews and refused plaintext at once, while B had
never seen reviews ready and kept web on plaintext: every call failed (found by
``bench/chaos.py``). Sharing readiness (``controlplane.tls_shared``), web calls reviews over
mTLS and reviews then refuses plaintext, with no call failing."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import httpx
from tests.integration.agent.agents import AgentHandle, agents
from tests.integration.store.etcd_planes import etcd_marks
from tests.integration.store.test_etcd_agent_failover import Addresses, replica

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client
from gossamer.testing.etcd import EtcdServer
from gossamer.testing.mesh import service
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION

pytestmark = etcd_marks(240, slow=True)

WEB_HOST, REVIEWS_HOST = "127.0.0.2", "127.0.0.3"
STRICT = {
    "apiVersion": API_VERSION,
    "kind": "Mesh",
    "metadata": {"name": "default"},
    "spec": {"mtls": {"mode": "strict"}},
}


async def test_a_strict_service_and_its_caller_on_different_replicas(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    at_a, at_b = Addresses(free_port(), free_port()), Addresses(free_port(), free_port())
    try:
        async with (
            HttpBackend("reviews-1", host=REVIEWS_HOST) as reviews_app,
            contextlib.AsyncExitStack() as planes,
        ):
            a = await planes.enter_async_context(replica(tmp_path / "a", etcd.url, at_a))
            (tmp_path / "b").mkdir(mode=0o700)
            shutil.copytree(tmp_path / "a" / "ca", tmp_path / "b" / "ca")  # one CA
            await planes.enter_async_context(replica(tmp_path / "b", etcd.url, at_b))
            async with api_client(a) as c:
                mesh = [STRICT, service("web"), service("reviews", 9080)]
                r = await c.post("/v1/apply", json={"manifests": mesh})
                assert r.status_code == 200, r.text
            reviews = AgentHandle(
                a, "host-reviews", REVIEWS_HOST, tmp_path / "reviews",
                [{"name": "reviews-1", "service": "reviews", "appAddress": REVIEWS_HOST,
                  "appPort": reviews_app.address[1]}],
                replicas=(at_a,),
            )  # fmt: skip
            web = AgentHandle(
                a, "host-web", WEB_HOST, tmp_path / "web",
                [{"name": "web-1", "service": "web", "appAddress": WEB_HOST,
                  "appPort": free_port(WEB_HOST), "dependencies": [{"service": "reviews"}]}],
                replicas=(at_b,),
            )  # fmt: skip
            async with agents(web, reviews), httpx.AsyncClient(timeout=5, trust_env=False) as c:
                for h in (reviews, web):
                    await h.join()
                    await h.start()
                for h in (reviews, web):
                    await h.wait_running()
                url = f"http://{(await web.env())['REVIEWS_ADDR']}/"
                inbound = reviews.status()["workloads"]["default/reviews-1"]["inbound"]

                async def refuses_plaintext() -> bool:
                    try:
                        await c.get(f"http://{inbound}/")
                    except httpx.TransportError:
                        return True
                    return False

                async def answered() -> bool:
                    try:
                        return (await c.get(url)).status_code == 200
                    except httpx.TransportError:
                        return False

                failed = 0

                async def enforced_and_calls_pass() -> bool:
                    nonlocal failed
                    failed += 0 if await answered() else 1
                    return await refuses_plaintext()

                await wait_until(answered, timeout=60, what="web reaching reviews")
                # from the first answer on, no call fails, up to and after strict enforcement
                await wait_until(enforced_and_calls_pass, timeout=60, what="strict enforced")
                for _ in range(30):
                    failed += 0 if await answered() else 1
                assert failed == 0
                assert "default/reviews-1" in reviews.status()["workloads"]
    finally:
        await etcd.stop()
