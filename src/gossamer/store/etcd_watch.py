"""The etcd store's watch: one etcd watch of the resource keys, resumed after any break.

etcd sends a transaction's events together, oldest first; they become one batch. The
watch remembers the last revision it delivered and, when the stream breaks (a member
restarted, the connection cut), opens a new etcd watch from the next revision on the next
member, so a consumer sees every transaction exactly once. A start etcd has compacted
comes back as ``ConflictError``, worded as every backend's: list again, watch again.
Deletes carry the last stored value (the watch asks etcd for previous values).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aetcd.rpc as rpc  # type: ignore[import-untyped]
import grpc
import grpc.aio

from gossamer.errors import ConflictError, StoreError
from gossamer.store.base import Change, StoredResource
from gossamer.store.memory import check_not_compacted

if TYPE_CHECKING:
    from gossamer.store.etcd import EtcdStore

log = logging.getLogger(__name__)

#: seconds between attempts to watch again, doubling up to the most
RETRY_FIRST = 0.05
RETRY_MOST = 2.0


async def follow(store: EtcdStore, cursor: int) -> AsyncIterator[list[Change]]:
    """Every transaction after store revision ``cursor``, forever, until the store closes."""
    delay = RETRY_FIRST
    while not store.closed:
        call = store.connection.watch_stub().Watch()
        store.calls.add(call)
        try:
            await call.write(_create(store, cursor))
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    raise StoreError("etcd ended the watch stream")
                if response.compact_revision:
                    compacted = int(response.compact_revision) - store.base
                    check_not_compacted(cursor, compacted, store.history)
                if response.canceled:
                    raise StoreError(f"etcd cancelled the watch: {response.cancel_reason}")
                delay = RETRY_FIRST
                for batch in _batches(store, response.events):
                    if store.closed:
                        return
                    check_not_compacted(cursor, store.compact_revision, store.history)
                    cursor = batch[0].revision
                    store.seen(cursor + store.base)
                    yield batch
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if store.closed and task is not None and not task.cancelling():
                return  # close() cancelled the call: the watch ends
            raise
        except (grpc.aio.AioRpcError, StoreError, asyncio.InvalidStateError) as e:
            # (InvalidStateError: grpc's word for a write to a stream etcd already ended)
            if store.closed:
                return
            what = f"{e.code().name}: {e.details()}" if isinstance(e, grpc.aio.AioRpcError) else e
            log.warning(
                "watch of the etcd store at %s broke (%s); watching again from revision %d "
                "in %.2fs",
                store.location,
                what,
                cursor,
                delay,
            )
        finally:
            store.calls.discard(call)
            call.cancel()
        store.connection.next_member()
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MOST)


def _create(store: EtcdStore, cursor: int) -> Any:
    return rpc.WatchRequest(
        create_request=rpc.WatchCreateRequest(
            key=store.keys.resources,
            range_end=store.keys.resources_end,
            start_revision=cursor + 1 + store.base,
            prev_kv=True,
            progress_notify=True,
        )
    )


def _batches(store: EtcdStore, events: Any) -> list[list[Change]]:
    """A response's events, one batch per transaction (etcd never splits one)."""
    batches: list[list[Change]] = []
    for event in events:
        change = _change(store, event)
        if batches and batches[-1][0].revision == change.revision:
            batches[-1].append(change)
        else:
            batches.append([change])
    return batches


def _change(store: EtcdStore, event: Any) -> Change:
    keys, base = store.keys, store.base
    revision = int(event.kv.mod_revision) - base
    if event.type == rpc.Event.EventType.PUT:
        resource = keys.stored(event.kv, base)
        return Change("put", resource.key, resource, revision)
    key = keys.resource_key(event.kv.key)
    if not event.HasField("prev_kv"):
        raise ConflictError(
            f"the value {key} held before its delete at revision {revision} was compacted in "
            "etcd; list again and watch from the listing's revision"
        )
    last: StoredResource = keys.stored(event.prev_kv, base)
    return Change("delete", key, last, revision)
