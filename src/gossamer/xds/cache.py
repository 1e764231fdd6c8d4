"""What each proxy should see, kept apart from the gRPC server that delivers it.

Producers (the control plane's reconciler) ``set`` snapshots per node id; the server's
streams ``watch`` their node: ``set`` sets each watching stream's own event (which its
requests set too: a stream waits on one event). The cache also tells producers
which nodes are connected (``on_connect``), so snapshots are built only for live proxies.
``on_connect`` callbacks run inside a stream's handler: they should note the node and
return (building a snapshot there would hold the event loop for that stream's sake).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from gossamer.types import ProxyIdentity
from gossamer.xds.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class SnapshotCacheStatistics:
    """Entries the cache holds per table: each is bounded by the connected nodes."""

    #: nodes with an open stream
    nodes: int
    snapshots: int
    #: change events streams are waiting on
    events: int


class SnapshotCache:
    def __init__(self) -> None:
        self._snapshots: dict[str, Snapshot] = {}
        self._changed: dict[str, asyncio.Event] = {}
        #: node id -> the events of the streams watching it (``watch``)
        self._watchers: dict[str, list[asyncio.Event]] = {}
        self._nodes: dict[str, tuple[ProxyIdentity, int]] = {}
        self._on_connect: list[Callable[[ProxyIdentity], None]] = []

    # -- producers ---------------------------------------------------------------------------

    def set(self, node_id: str, snapshot: Snapshot) -> bool:
        """Publish a snapshot; returns False if it equals the current one (nothing to push)."""
        old = self._snapshots.get(node_id)
        if old is not None and old.same_content(snapshot):
            return False
        self._snapshots[node_id] = snapshot
        event = self._changed.pop(node_id, None)
        if event is not None:
            event.set()
        for watcher in self._watchers.get(node_id, ()):
            watcher.set()
        return True

    def on_connect(self, callback: Callable[[ProxyIdentity], None]) -> None:
        """Call ``callback`` whenever a node opens its first stream."""
        self._on_connect.append(callback)

    def connected(self) -> list[ProxyIdentity]:
        return [ident for ident, _ in self._nodes.values()]

    def identity(self, node_id: str) -> ProxyIdentity | None:
        """The identity of a connected node (None: it has no open stream)."""
        entry = self._nodes.get(node_id)
        return entry[0] if entry is not None else None

    def attached(self, node_id: str) -> bool:
        """Has this node an open stream? (a producer that yielded checks before ``set``)"""
        return node_id in self._nodes

    def statistics(self) -> SnapshotCacheStatistics:
        """Entries held per table (nodes, snapshots, change events): for memory checks."""
        return SnapshotCacheStatistics(
            nodes=len(self._nodes),
            snapshots=len(self._snapshots),
            events=len(self._changed) + sum(len(w) for w in self._watchers.values()),
        )

    # -- streams -----------------------------------------------------------------------------

    def get(self, node_id: str) -> Snapshot | None:
        return self._snapshots.get(node_id)

    def changed(self, node_id: str) -> asyncio.Event:
        """An event set at the next ``set`` for this node."""
        event = self._changed.get(node_id)
        if event is None:
            event = self._changed[node_id] = asyncio.Event()
        return event

    def watch(self, node_id: str, event: asyncio.Event) -> None:
        """Set ``event`` at every ``set`` for this node, until ``unwatch``."""
        self._watchers.setdefault(node_id, []).append(event)

    def unwatch(self, node_id: str, event: asyncio.Event) -> None:
        watchers = self._watchers.get(node_id)
        if watchers is None:
            return
        watchers[:] = [w for w in watchers if w is not event]
        if not watchers:
            del self._watchers[node_id]

    def attach(self, proxy: ProxyIdentity) -> None:
        node_id = proxy.node_id
        _, streams = self._nodes.get(node_id, (proxy, 0))
        self._nodes[node_id] = (proxy, streams + 1)
        if streams == 0:
            for cb in self._on_connect:
                cb(proxy)

    def detach(self, proxy: ProxyIdentity) -> None:
        node_id = proxy.node_id
        ident, streams = self._nodes.get(node_id, (proxy, 1))
        if streams <= 1:
            # nothing of a node outlives its last stream (a flood of made-up node ids must
            # not grow the cache)
            self._nodes.pop(node_id, None)
            self._snapshots.pop(node_id, None)
            self._changed.pop(node_id, None)
        else:
            self._nodes[node_id] = (ident, streams - 1)
