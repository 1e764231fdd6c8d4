"""``EtcdPresence`` on a real etcd: claims and shared documents bound to a replica's lease
reach the other replicas, are written again under a new lease when etcd drops the old one,
and vanish ``ttl`` seconds after a replica dies without revoking its lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aetcd.rpc as rpc  # type: ignore[import-untyped]
from tests.integration.store.etcd_planes import etcd_marks

from gossamer.polling import wait_until
from gossamer.store.etcd import EtcdStore
from gossamer.store.etcd_presence import EtcdPresence
from gossamer.testing.etcd import EtcdServer

pytestmark = etcd_marks(120)


async def test_claims_follow_the_lease(tmp_path: Path) -> None:
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with await EtcdStore.open(etcd.url) as store_b:
            store_a = await EtcdStore.open(etcd.url)
            a = EtcdPresence(store_a, replica="a", ttl=2, every=0.1)
            b = EtcdPresence(store_b, replica="b", ttl=2, every=0.1)
            news = asyncio.Event()
            b.on_change = news.set
            shared = {"a": b"first"}
            seen_at_b: list[dict[str, bytes]] = []
            a.document = lambda: shared["a"]
            a.kept = lambda: b"kept by a"
            kept_at_b: list[bytes] = []
            b.on_kept = kept_at_b.append
            b.on_documents = lambda documents: seen_at_b.append(dict(documents))
            async with asyncio.TaskGroup() as tg:
                runs = [tg.create_task(a.run()), tg.create_task(b.run())]
                a.publish({"vm-1", "vm-2"})
                b.publish({"vm-2", "vm-3"})
                # each replica reads the other's claims at its own next round
                await wait_until(
                    lambda: (
                        b.alive_elsewhere() == {"vm-1", "vm-2"}
                        and a.alive_elsewhere() == {"vm-2", "vm-3"}
                    ),
                    timeout=10,
                    what="each replica's claims at the other",
                )
                assert news.is_set()
                await wait_until(
                    lambda: seen_at_b[-1:] == [{"a": b"first"}], timeout=10, what="A's document"
                )
                shared["a"] = b"second"  # (B shares none: it has no document to share)
                await wait_until(
                    lambda: seen_at_b[-1:] == [{"a": b"second"}], timeout=10, what="its change"
                )
                # etcd drops A's lease (and its keys): A writes its claims under a new one
                lease = a.lease.id
                await store_b.connection.lease_stub().LeaseRevoke(
                    rpc.LeaseRevokeRequest(ID=lease), timeout=5
                )
                await wait_until(
                    lambda: a.lease.id != lease and b.alive_elsewhere() == {"vm-1", "vm-2"},
                    timeout=10,
                    what="A's claims under a new lease",
                )

                async def document_under_new_lease() -> bool:
                    key = store_b.keys.replica_key("a")
                    found = await store_b.connection.range(rpc.RangeRequest(key=key))
                    return [(kv.value, kv.lease) for kv in found.kvs] == [(b"second", a.lease.id)]

                await wait_until(document_under_new_lease, timeout=10, what="A's document again")
                # A dies without revoking (its connection gone first): its claims last
                # until the lease expires, ttl seconds later
                await store_a.close()
                runs[0].cancel()
                await wait_until(
                    lambda: b.alive_elsewhere() == frozenset(), timeout=10, what="A's lease expiry"
                )
                await wait_until(lambda: seen_at_b[-1] == {}, timeout=10, what="A's document gone")
                # what A kept outlives its lease: a replica starting now reads it once
                c = EtcdPresence(store_b, replica="c", ttl=2, every=0.1)
                kept_at_c: list[bytes] = []
                c.on_kept = kept_at_c.append
                run_c = tg.create_task(c.run())
                await wait_until(lambda: c.rounds >= 3, timeout=10, what="rounds of C")
                assert kept_at_c == [b"kept by a"] and kept_at_b in ([], [b"kept by a"])
                run_c.cancel()
                runs[1].cancel()
    finally:
        await etcd.stop()


async def test_a_restarted_etcd_never_ends_the_rounds(tmp_path: Path) -> None:
    # the keep-alive stream etcd ended on its way down failed the next write with
    # InvalidStateError, which ended the task and with it the whole control plane
    etcd = EtcdServer(tmp_path / "etcd")
    await etcd.start()
    try:
        async with await EtcdStore.open(etcd.url, call_timeout=1.0) as store:
            presence = EtcdPresence(store, replica="a", ttl=5, every=0.1)
            presence.publish({"vm-1"})
            async with asyncio.TaskGroup() as tg:
                run = tg.create_task(presence.run())
                await wait_until(lambda: presence.rounds >= 3, timeout=10, what="rounds")
                for stop in (etcd.stop, etcd.kill):
                    await stop()
                    rounds = presence.rounds
                    await etcd.start()
                    await wait_until(
                        lambda r=rounds: presence.rounds > r + 3,
                        timeout=30,
                        what="rounds after etcd came back",
                    )
                    assert not run.done()
                    assert presence.claims.written == {"vm-1"}
                run.cancel()
    finally:
        await etcd.stop()
