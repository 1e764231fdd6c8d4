"""A round that publishes judges mTLS readiness again once it is out: ACKs that arrived
while it was being published were judged against the round before it (``published_tls``
is set when the round ends), and with no ACK after it a strict sidecar kept taking
plaintext until some other event (CI saw `test_strict_refusals` wait 90 s)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry
from test_tls_readiness import EDGE, PROXIES, REVIEWS, REVIEWS_2, WEB, mesh_plane

from gossamer.polling import wait_until
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.snapshot import Snapshot

pytestmark = pytest.mark.asyncio


class AckedAtOnce(XdsMonitor):
    """Every proxy ACKs each snapshot the moment it is set, before its round ends."""

    def synced(self, node_id: str, snap: Snapshot) -> bool:
        return True


async def test_strict_sidecars_are_enforced_with_no_ack_after_the_rounds() -> None:
    plane = await mesh_plane("strict", AckedAtOnce(CollectorRegistry()))
    every = frozenset(p.node_id for p in PROXIES)
    plane.tls.set_capable(every)
    plane.tls.set_holding(every)
    runner = asyncio.create_task(plane.run())
    try:
        sidecars = {(p.namespace, p.name) for p in (WEB, REVIEWS, REVIEWS_2)}

        def enforced() -> bool:
            return plane.publisher.published_tls.enforced >= sidecars

        await wait_until(enforced, timeout=10, what="every strict sidecar enforced")
        assert plane.tls.strict_pending(plane.model, plane.publisher.published_tls) == []
        assert plane.cache.get(EDGE.node_id) is not None
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
