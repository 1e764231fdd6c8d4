"""``EtcdLeader`` on a real etcd: one replica of two leads; its fenced writes land and a
deposed leader's are refused with nothing written; the other replica leads within a
round when the leader stops, and within the lease's ttl when it dies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aetcd.rpc as rpc  # type: ignore[import-untyped]
import pytest
from tests.integration.store.etcd_planes import etcd_marks

from gossamer.errors import FencedError
from gossamer.polling import wait_until
from gossamer.store.etcd import EtcdStore
from gossamer.store.etcd_leader import EtcdLeader
from gossamer.testing.etcd import EtcdServer
from gossamer.types import Manifest, ResourceKey

pytestmark = etcd_marks(120)

ROLE = "singletons"


def svc(name: str) -> Manifest:
    return {
        "apiVersion": "gossamer.dev/v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"port": 80}]},
    }


async def test_one_leads_and_a_deposed_leader_writes_nothing(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with (
            await EtcdStore.open(etcd.url) as store_a,
            await EtcdStore.open(etcd.url) as store_b,
        ):
            a = EtcdLeader(store_a, ROLE, replica="cp-a", ttl=2, every=0.1)
            b = EtcdLeader(store_b, ROLE, replica="cp-b", ttl=2, every=0.1)
            async with asyncio.TaskGroup() as tg:
                runs = [tg.create_task(a.run())]
                await wait_until(lambda: a.leading, timeout=10, what="A to lead")
                runs.append(tg.create_task(b.run()))
                await wait_until(lambda: b.leader == "cp-a", timeout=10, what="B to see A")
                assert not b.leading
                with pytest.raises(FencedError, match=r"\(cp-b\) does not lead"):
                    b.fence()
                fence = a.fence()
                assert fence is not None
                await store_a.apply([svc("by-a")], fence=fence)
                # A's lease goes (etcd dropped it; A paused): a new term begins, whoever
                # wins it, and A's stale fence writes nothing, whatever A believes
                await store_b.connection.lease_stub().LeaseRevoke(
                    rpc.LeaseRevokeRequest(ID=a.lease.id), timeout=5
                )

                def new_term() -> EtcdLeader | None:
                    now = [x for x in (a, b) if x.leading and x.election.token != fence.token]
                    return now[0] if now else None

                leader = await wait_until(new_term, timeout=10, what="a new term")
                assert isinstance(leader, EtcdLeader)
                before = await store_b.revision()
                with pytest.raises(FencedError, match="no longer leads 'singletons'"):
                    await store_a.apply([svc("by-stale-a")], fence=fence)
                assert await store_b.revision() == before
                assert await store_b.get(ResourceKey("Service", "default", "by-stale-a")) is None
                other = b if leader is a else a
                await wait_until(
                    lambda: other.leader == leader.replica, timeout=10, what="the other to see it"
                )
                assert not other.leading
                new = leader.fence()
                assert new is not None and new.token > fence.token
                await leader.store.apply([svc("by-new-leader")], fence=new)
                # the leader stops (revokes its lease): the other leads within a few rounds,
                # not a ttl
                runs[0 if leader is a else 1].cancel()
                await wait_until(lambda: other.leading, timeout=1.5, what="the other to lead")
                runs[1 if leader is a else 0].cancel()
    finally:
        await etcd.stop()


async def test_a_dead_leader_is_replaced_after_its_lease_expires(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with await EtcdStore.open(etcd.url) as store_b:
            store_a = await EtcdStore.open(etcd.url)
            a = EtcdLeader(store_a, ROLE, replica="cp-a", ttl=2, every=0.1)
            b = EtcdLeader(store_b, ROLE, replica="cp-b", ttl=2, every=0.1)
            async with asyncio.TaskGroup() as tg:
                run_a = tg.create_task(a.run())
                await wait_until(lambda: a.leading, timeout=10, what="A to lead")
                run_b = tg.create_task(b.run())
                await wait_until(lambda: b.leader == "cp-a", timeout=10, what="B to see A")
                # A dies without revoking (its connection gone first)
                await store_a.close()
                run_a.cancel()
                started = asyncio.get_running_loop().time()
                await wait_until(lambda: b.leading, timeout=10, what="B to lead")
                assert asyncio.get_running_loop().time() - started > 1.0  # the lease's ttl
                run_b.cancel()
    finally:
        await etcd.stop()


async def test_a_leader_cut_from_etcd_steps_down_and_leads_again(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with await EtcdStore.open(etcd.url, call_timeout=1.0) as store:
            a = EtcdLeader(store, ROLE, replica="cp-a", ttl=30, every=0.1)
            async with asyncio.TaskGroup() as tg:
                run = tg.create_task(a.run())
                await wait_until(lambda: a.leading, timeout=10, what="A to lead")
                token = a.election.token
                await etcd.stop()
                await wait_until(lambda: not a.leading, timeout=10, what="A to step down")
                await etcd.start()
                # its key outlived the outage under its lease: the same term goes on
                await wait_until(lambda: a.leading, timeout=30, what="A to lead again")
                assert a.election.token == token
                run.cancel()
    finally:
        await etcd.stop()
