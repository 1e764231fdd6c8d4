"""``wait_synced`` with the cache's latest snapshot: a node a later round gave a newer
snapshot is done once it ACKed that one (it is never sent the superseded target, and an
``apply --wait`` ran out its 60 s in a CI run); without a newer one it is still behind."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from gossamer.types import ProxyIdentity
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import StreamState

pytestmark = pytest.mark.asyncio

PROXY = ProxyIdentity("sidecar", "default", "web-1")


async def test_a_target_superseded_by_a_later_snapshot_acked_is_done() -> None:
    monitor = XdsMonitor(CollectorRegistry())
    monitor.opened("s", PROXY, StreamState(delta=False), "sotw", None)
    target, later = Snapshot(), Snapshot()  # (empty: in sync once the stream holds them)
    monitor.snapshot("s", later)  # the stream went on to the later one
    node = PROXY.node_id
    cache = {node: later}
    assert await monitor.wait_synced([(node, target)], 5, cache.get) == []
    # without a later snapshot published, the target is what it must ACK
    assert await monitor.wait_synced([(node, target)], 0.05, {node: target}.get) == [node]
    assert await monitor.wait_synced([(node, target)], 0.05) == [node]
    monitor.close()
