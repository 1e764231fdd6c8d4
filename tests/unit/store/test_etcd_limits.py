"""The etcd limits docs/store.md asks for cover the API's largest apply (16 MiB of
manifests in one request body) as one etcd transaction. Built, not sent: the transaction
of the worst cases, measured against the recommended --max-txn-ops/--max-request-bytes."""

from __future__ import annotations

import json

import pytest
from store_helpers import manifest

from gossamer.api.body_limits import DEFAULT_MAX_REQUEST_BYTES
from gossamer.model import parse_manifest
from gossamer.store.etcd_keys import EtcdKeys
from gossamer.store.etcd_txn import add_unchanged, write_txn
from gossamer.store.etcd_url import (
    DEFAULT_PREFIX,
    RECOMMENDED_MAX_REQUEST_BYTES,
    RECOMMENDED_MAX_TXN_OPS,
)
from gossamer.store.memory import prepare_apply

#: etcd wraps a request in its raft entry: leave room for that header
_ETCD_OVERHEAD = 4096


def _fill(name_length: int, namespace: str | None) -> list[dict[str, object]]:
    """As many of the smallest valid resource (a Mesh) as fit in one API request body."""
    budget = DEFAULT_MAX_REQUEST_BYTES - len('{"manifests":[]}')
    one = manifest("Mesh", "0" * name_length, namespace)
    count = budget // (len(json.dumps(one, separators=(",", ":"))) + 1)  # and a comma
    return [manifest("Mesh", f"{i:0{name_length}d}", namespace) for i in range(count)]


@pytest.mark.parametrize(
    ("name_length", "namespace"),
    [
        # the most resources: ~190,000 in 30.5 MiB of transaction
        pytest.param(7, None, marks=pytest.mark.slow),
        # the longest keys beside their values: ~76,000 in 38.4 MiB
        (63, "n" * 63),
    ],
)
def test_the_apis_largest_apply_fits_the_recommended_etcd_limits(
    name_length: int, namespace: str | None
) -> None:
    puts = _fill(name_length, namespace)
    parse_manifest(puts[0])  # a valid resource, as the API would accept
    prepared = prepare_apply(puts, [])
    keys = EtcdKeys(DEFAULT_PREFIX)
    writes = [(keys.key(key), text.encode()) for key, text in prepared.puts]
    request, created = write_txn(DEFAULT_PREFIX, 2, writes, [], {}, keys.written)
    add_unchanged(request, keys.written, 9)  # (as the control plane's applies are)
    assert created == len(puts)
    assert len(request.compare) == len(puts) + 2 <= RECOMMENDED_MAX_TXN_OPS
    assert len(request.success) == len(puts) + 1 <= RECOMMENDED_MAX_TXN_OPS
    assert request.ByteSize() + _ETCD_OVERHEAD <= RECOMMENDED_MAX_REQUEST_BYTES
    # and the limits are not far above what is needed (etcd keeps requests in memory)
    assert request.ByteSize() > RECOMMENDED_MAX_REQUEST_BYTES / 3
