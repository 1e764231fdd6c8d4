"""What a control plane on etcd runs beside the rest, as one of several replicas
(docs/store.md, "Replicas"): a probe of etcd (a lost etcd refuses writes at once, /readyz
503, xDS closed after the grace), the hosts it sees alive and its mTLS readiness shared
with the other replicas, and the election of the replica that runs the singletons, its
writes fenced."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from gossamer.controlplane.leadership import SINGLETONS
from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.store_loss import StoreLossGuard
from gossamer.store.etcd import EtcdStore
from gossamer.store.etcd_health import EtcdProbe
from gossamer.store.etcd_leader import EtcdLeader
from gossamer.store.etcd_lease import replica_name
from gossamer.store.etcd_presence import EtcdPresence
from gossamer.xds.server import XdsServer

#: why a starting replica refuses xDS streams for a moment
SHARING = "this control-plane replica is starting: it has not yet shared mTLS readiness"


@dataclass
class Replica:
    #: the hosts this replica sees alive, shared (None: a store one process owns)
    presence: EtcdPresence | None = None
    #: what runs until the control plane stops
    tasks: list[Callable[[], Coroutine[Any, Any, None]]] = field(default_factory=list)


def replica_of(plane: ControlPlane, xds: XdsServer, store_loss_grace: float) -> Replica:
    """Wire ``plane`` as a replica when its store is etcd (its ``leadership`` and
    ``store_health``); a store one process owns needs nothing (an empty ``Replica``)."""
    store = plane.store
    if not isinstance(store, EtcdStore):
        return Replica()
    name = replica_name()
    presence = EtcdPresence(store, replica=name)
    shared_tls = plane.mtls.shared()  # (a sidecar and its callers may stream from others)
    presence.document, presence.on_documents = shared_tls.document, shared_tls.take
    presence.kept, presence.on_kept = shared_tls.kept, shared_tls.take_kept
    # no stream before this replica knows which workloads the others mark for mTLS: a proxy
    # moving here must be given the marks its peers' sidecars already count on
    xds.refuse_streams(SHARING)

    async def serve_xds_once_shared() -> None:
        await presence.documents_shared.wait()
        if xds.refusing == SHARING:  # (not closed since for a lost store)
            xds.accept_streams()

    plane.leadership = leader = EtcdLeader(store, SINGLETONS, replica=name)
    plane.store_health = store.health
    closer = StoreLossGuard(store.health, store_loss_grace, xds.refuse_streams, xds.accept_streams)
    probe = EtcdProbe(store, store.health)
    return Replica(
        presence, [probe.run, closer.run, presence.run, leader.run, serve_xds_once_shared]
    )
