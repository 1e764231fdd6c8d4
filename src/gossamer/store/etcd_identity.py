"""The identity of an etcd store: the key ``<prefix>/meta/store-id`` (issue 7's R1 for etcd).

A new store writes that key once (a create-only transaction, so replicas starting together
agree on one id); its create revision is the store's revision 0 (see ``etcd.py``). Each
control plane also remembers the id in ``DIR/gossamer.etcd.id`` (``--data-dir``), as it does
beside an SQLite file. On start it refuses an etcd that

- has no identity key while the marker says a store was there (etcd's data lost, or another
  cluster or prefix named by mistake): starting would start an empty mesh;
- holds another store's id;
- holds resources but no identity key (the key was deleted by hand).

Every write transaction also compares the identity key's create revision, so a store
emptied or replaced while the control plane runs refuses writes instead of taking them.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aetcd.rpc as rpc  # type: ignore[import-untyped]

from gossamer.errors import StoreError
from gossamer.store.etcd_client import EtcdConnection
from gossamer.store.etcd_url import EtcdLocation
from gossamer.store.identity import DOCS, new_store_id, read_marker, render, write_marker

#: the marker's name in --data-dir
MARKER_NAME = "gossamer.etcd.id"


@dataclass(frozen=True, slots=True)
class EtcdIdentity:
    store_id: str
    #: the etcd revision that created the identity key: the store's revision 0
    base: int


def identity_key(prefix: str) -> bytes:
    return f"{prefix}/meta/store-id".encode()


def identity_compare(prefix: str, base: int) -> Any:
    """A transaction compare that holds only while the identity key is the one we opened."""
    return rpc.Compare(
        key=identity_key(prefix),
        target=rpc.Compare.CompareTarget.CREATE,
        result=rpc.Compare.CompareResult.EQUAL,
        create_revision=base,
    )


async def settle(
    conn: EtcdConnection, resources_key: bytes, resources_end: bytes, marker: Path | None
) -> EtcdIdentity:
    """The store's identity, created if the store is new; refuses as the module says."""
    location = conn.location
    key = identity_key(location.prefix)
    marker_store = None if marker is None else marker.with_name(marker.name.removesuffix(".id"))
    remembered = (
        None if marker_store is None else await asyncio.to_thread(read_marker, marker_store)
    )
    found = await conn.range(rpc.RangeRequest(key=key))
    if not found.kvs:
        if remembered is not None:
            raise _refusal(
                location,
                marker,
                f"it has no store identity (key {key.decode()}), but {marker} records that "
                f"store {remembered.store_id} was kept there since {remembered.created_at}: "
                "etcd's data was lost, or this is another cluster or key prefix. Restore etcd "
                "from a snapshot and start again",
            )
        count = await conn.range(
            rpc.RangeRequest(key=resources_key, range_end=resources_end, count_only=True)
        )
        if count.count:
            raise _refusal(
                location,
                marker,
                f"it holds {count.count} resources but no store identity (key "
                f"{key.decode()} was deleted); put back the key's value from a backup",
            )
        found = await _create(conn, key)
    kv = found.kvs[0]
    try:
        store_id = str(json.loads(kv.value)["storeId"])
    except (ValueError, KeyError, TypeError) as e:
        raise StoreError(
            f"the etcd store at {location}: the identity key {key.decode()} holds no store "
            f"id ({e}); restore its value from a backup. See {DOCS}"
        ) from None
    if remembered is not None and remembered.store_id != store_id:
        raise _refusal(
            location,
            marker,
            f"it is store {store_id}, but {marker} records store {remembered.store_id} "
            f"(kept there since {remembered.created_at}): another mesh's store, or the wrong "
            "cluster or key prefix. Name the right one",
        )
    if marker_store is not None and remembered is None:
        await asyncio.to_thread(write_marker, marker_store, store_id)
    return EtcdIdentity(store_id, int(kv.create_revision))


async def _create(conn: EtcdConnection, key: bytes) -> Any:
    """Write the identity key unless another replica just did; the range that holds it."""
    value = json.dumps(
        {
            "storeId": render(new_store_id()),
            "createdAt": datetime.now(UTC).replace(microsecond=0).isoformat(),
        }
    ).encode()
    response = await conn.txn(
        rpc.TxnRequest(
            compare=[
                rpc.Compare(
                    key=key,
                    target=rpc.Compare.CompareTarget.CREATE,
                    result=rpc.Compare.CompareResult.EQUAL,
                    create_revision=0,
                )
            ],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))],
        )
    )
    del response  # either way the key now exists: read it back
    return await conn.range(rpc.RangeRequest(key=key))


def _refusal(location: EtcdLocation, marker: Path | None, what: str) -> StoreError:
    start_afresh = (
        f"; to start an empty mesh on purpose (every agent must join again), delete {marker} first"
        if marker is not None
        else ""
    )
    return StoreError(
        f"refusing to open the etcd store at {location}: {what}{start_afresh}. See {DOCS}"
    )
