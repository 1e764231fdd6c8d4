"""The etcd transaction of an ``EtcdStore.apply``, and what its failure says.

Given what the batch's keys held when read, the transaction compares each key's mod
revision as read (absent: 0) and the store's identity key (``etcd_identity.py``), and
changes only what differs: a put per changed value, a delete per present key. A fenced
apply also compares the create revision of the role's leader key with the fencing token
(``etcd_leader.py``). When a compare fails, the transaction reads the identity key (and the
leader key) instead: ``check_fence`` tells a lost leadership from another writer.

A transaction that writes resources also puts the ``written`` key, whose mod revision is
thus the newest resource write's (deletes included, which leave no key to compare). An
apply that must find nothing written since a revision compares it (``add_unchanged``;
``check_written`` reads the answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aetcd.rpc as rpc  # type: ignore[import-untyped]

from gossamer.errors import FencedError
from gossamer.store.base import Fence
from gossamer.store.etcd_identity import identity_compare, identity_key
from gossamer.store.memory import check_unchanged


def write_txn(
    prefix: str,
    base: int,
    writes: Sequence[tuple[bytes, bytes]],
    removes: Sequence[bytes],
    found: dict[bytes, Any],
    written: bytes,
) -> tuple[Any, int]:
    """The transaction of an apply given what its keys held (``found``): a compare per key
    (unchanged since read) and of the identity key; a put per changed value, a delete per
    present key, and a put of the ``written`` key (none: nothing to write). Also how many
    resources it adds (or removes)."""
    compares = [identity_compare(prefix, base)]
    ops: list[Any] = []
    created = 0
    for key, value in writes:
        old = found.get(key)
        compares.append(_unchanged(key, old))
        if old is None or bytes(old.value) != value:
            ops.append(rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value)))
            created += old is None
    for key in removes:
        old = found.get(key)
        compares.append(_unchanged(key, old))
        if old is not None:
            ops.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key)))
            created -= 1
    if ops:
        ops.append(rpc.RequestOp(request_put=rpc.PutRequest(key=written, value=b"")))
    identity = rpc.RangeRequest(key=identity_key(prefix), keys_only=True)
    request = rpc.TxnRequest(
        compare=compares, success=ops, failure=[rpc.RequestOp(request_range=identity)]
    )
    return request, created


def _unchanged(key: bytes, old: Any) -> Any:
    """Compare: ``key`` is still as read (absent: mod revision 0)."""
    return rpc.Compare(
        key=key,
        target=rpc.Compare.CompareTarget.MOD,
        result=rpc.Compare.CompareResult.EQUAL,
        mod_revision=0 if old is None else int(old.mod_revision),
    )


def add_fence(request: Any, leader_key: bytes, fence: Fence) -> None:
    """Make ``request`` hold only while ``fence`` does (its failure reads the leader
    key ``leader_key``, for ``check_fence``)."""
    request.compare.append(
        rpc.Compare(
            key=leader_key,
            target=rpc.Compare.CompareTarget.CREATE,
            result=rpc.Compare.CompareResult.EQUAL,
            create_revision=fence.token,
        )
    )
    request.failure.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=leader_key)))


def check_fence(fence: Fence, kvs: Any) -> None:
    """Raise ``FencedError`` unless the leader key a failed transaction read (``kvs``) is
    still the one of ``fence``."""
    if not kvs or int(kvs[0].create_revision) != fence.token:
        now = f"led by {bytes(kvs[0].value).decode(errors='replace')}" if kvs else "unled"
        raise FencedError(
            f"this replica no longer leads {fence.role!r} (fencing token {fence.token} is "
            f"stale; the role is {now}): nothing was written; the leader does this work"
        )


def add_unchanged(request: Any, written: bytes, since: int) -> None:
    """Make ``request`` hold only if no resource was written after etcd revision
    ``since`` (its failure reads the ``written`` key, for ``check_written``)."""
    request.compare.append(
        rpc.Compare(
            key=written,
            target=rpc.Compare.CompareTarget.MOD,
            result=rpc.Compare.CompareResult.LESS,
            mod_revision=since + 1,
        )
    )
    request.failure.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=written)))


def check_written(since: int, base: int, kvs: Any) -> None:
    """``StaleModelError`` if the ``written`` key a failed transaction read (``kvs``)
    was put after store revision ``since`` (etcd revisions less the store's ``base``)."""
    check_unchanged(since, int(kvs[0].mod_revision) - base if kvs else 0)
