"""Replicas on one etcd share which hosts they see alive (issue 15: the liveness rule with
leases, without a revision per heartbeat).

A host's agent calls replica A only. Replica B hears nothing from it, so B's own rule
judges the host dead; B still shows it active because A's claim (a key under A's lease)
says A sees it. When the agent falls silent A withdraws its claim and both mark the host
unreachable; when it beats again both mark it active; when A stops, its claims go with
its lease. Short liveness intervals come from the documented settings."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import aetcd.rpc as rpc  # type: ignore[import-untyped]
import httpx
from tests.integration.store.etcd_planes import etcd_marks
from tests.integration.xds.test_liveness import LIVENESS, Agent

from gossamer.agent.connect import join_control_plane, open_registry
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp, create_app
from gossamer.server.settings import Settings
from gossamer.store.etcd_presence import EtcdPresence
from gossamer.testing.controlplane import admin_token, api_client, api_verify
from gossamer.testing.etcd import EtcdServer
from gossamer.testing.mesh import service

pytestmark = etcd_marks(180)


#: the documented settings' heartbeat, with 2 s of missed beats before a replica's own rule
#: judges dead (not 0.6 s): at A, a beat late under a loaded machine's CPU must not make A
#: withdraw its claim while the test reads B
SHARED_LIVENESS = replace(LIVENESS, missed_heartbeats=10)


@contextlib.asynccontextmanager
async def replica(data: Path, store: str) -> AsyncIterator[ControlPlaneApp]:
    settings = Settings(
        data,
        api_addr=("127.0.0.1", 0),
        xds_addr=("127.0.0.1", 0),
        store=store,
        liveness=SHARED_LIVENESS,
        xds_tls="optional",
    )
    async with create_app(settings) as app:
        yield app


def shared(app: ControlPlaneApp) -> EtcdPresence:
    found = app.agents.presence.shared
    assert isinstance(found, EtcdPresence)
    return found


async def test_a_host_seen_by_one_replica_is_alive_at_every_replica(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with contextlib.AsyncExitStack() as replica_a:
            a = await replica_a.enter_async_context(replica(tmp_path / "a", etcd.url))
            to_a = await replica_a.enter_async_context(api_client(a))
            r = await to_a.post("/v1/apply", json={"manifests": [service("cart")]})
            assert r.status_code == 200, r.text
            agent = Agent(to_a, "vm-a")
            await agent.join()
            agent.start()  # heartbeats to A only
            headers = {"Authorization": f"Bearer {admin_token(tmp_path / 'a')}"}
            async with (
                replica(tmp_path / "b", etcd.url) as b,
                httpx.AsyncClient(
                    base_url=b.api_url, headers=headers, verify=api_verify(b), trust_env=False
                ) as to_b,
            ):

                async def b_says(state: str) -> bool:
                    r = await to_b.get("/v1/agents")
                    assert r.status_code == 200, r.text
                    [found] = r.json()["items"]
                    return found["state"] == state

                presence_b = b.agents.presence
                await wait_until(
                    lambda: "vm-a" in shared(b).alive_elsewhere(),
                    timeout=30,
                    what="B reads A's claim",
                )
                # B's own rule says dead (no heartbeat, no stream at B) ...
                await wait_until(
                    lambda: not presence_b.rule.alive("vm-a", time.monotonic()),
                    timeout=30,
                    what="B's own deadline",
                )
                presence_b.evaluate()
                # ... but A sees the host, so it is active at B too
                assert await b_says("active")
                assert presence_b.dead == frozenset()

                # silent at A too: A withdraws its claim, and B marks it unreachable
                await agent.stop()
                await wait_until(lambda: b_says("unreachable"), timeout=30, what="dead at B")
                assert "vm-a" not in shared(b).alive_elsewhere()
                # it beats again (at A): active at B again
                agent.start()
                await wait_until(lambda: b_says("active"), timeout=30, what="alive at B")
                # heartbeats and keep-alives write nothing: etcd's revision stands still
                # over three rounds of both replicas (~15 heartbeats)
                before = await etcd_revision(b)
                rounds = shared(a).rounds, shared(b).rounds
                await wait_until(
                    lambda: shared(a).rounds >= rounds[0] + 3 and shared(b).rounds >= rounds[1] + 3,
                    timeout=30,
                    what="three rounds",
                )
                assert await etcd_revision(b) == before

                # A stops while it still sees the host: its claim goes with its lease
                # (revoked as it stops), and B, which hears nothing, marks the host dead
                beats = asyncio.create_task(beat_until_refused(to_a, agent))
                await agent.stop()
                await replica_a.aclose()
                await beats
                await wait_until(lambda: b_says("unreachable"), timeout=30, what="dead at B")
    finally:
        await etcd.stop()


async def etcd_revision(app: ControlPlaneApp) -> int:
    found = await shared(app).store.connection.range(rpc.RangeRequest(key=b"\0", count_only=True))
    return int(found.header.revision)


async def beat_until_refused(api: httpx.AsyncClient, agent: Agent) -> None:
    """Heartbeats to ``api`` until it stops answering (bounded)."""
    for _ in range(10_000):
        try:
            sent = await api.post(
                f"/v1/agents/{agent.agent_id}/health", json={"workloads": {}}, headers=agent.auth
            )
        except (httpx.TransportError, RuntimeError):  # (RuntimeError: the client closed)
            return
        if sent.status_code != 200:
            return
        await asyncio.sleep(LIVENESS.heartbeat_interval)


async def test_an_agent_that_knows_both_replicas_moves_to_the_survivor(tmp_path: Path) -> None:
    """Both replicas hold the same CA (A's ``ca/`` copied before B starts, as
    docs/store.md says); the agent joins with ``--server A,B`` and keeps both: when A
    stops, its calls go to B, which verifies it and counts its heartbeats."""
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with contextlib.AsyncExitStack() as replica_a:
            a = await replica_a.enter_async_context(replica(tmp_path / "a", etcd.url))
            to_a = await replica_a.enter_async_context(api_client(a))
            r = await to_a.post("/v1/apply", json={"manifests": [service("cart")]})
            assert r.status_code == 200, r.text
            token = (await to_a.post("/v1/tokens", json={"scope": {"anyService": True}})).json()[
                "token"
            ]
            (tmp_path / "b").mkdir(mode=0o700)
            shutil.copytree(tmp_path / "a" / "ca", tmp_path / "b" / "ca")
            async with replica(tmp_path / "b", etcd.url) as b:
                cred = await join_control_plane(f"{a.api_url},{b.api_url}", token, "vm-a")
                assert cred.server == f"{a.api_url},{b.api_url}"
                async with open_registry(cred) as api:
                    put = await api.put_workloads([])
                    assert api.server == a.api_url, put
                    await replica_a.aclose()  # A stops
                    await api.report_health({})
                    assert api.server == b.api_url
                    headers = {"Authorization": f"Bearer {admin_token(tmp_path / 'a')}"}
                    async with httpx.AsyncClient(
                        base_url=b.api_url, headers=headers, verify=api_verify(b), trust_env=False
                    ) as to_b:
                        r = await to_b.get("/v1/agents")
                        [agent] = r.json()["items"]
                        assert agent["host"] == "vm-a" and agent["state"] == "active", agent
    finally:
        await etcd.stop()
