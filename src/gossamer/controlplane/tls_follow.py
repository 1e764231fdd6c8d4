"""What moves mTLS readiness, followed for the control plane (docs/security.md, "mTLS
modes"): which proxies get secrets over SDS (their node metadata), which hold them (each
agent's heartbeat report), and every ACK. Each is judged by ``TlsReadiness`` against the
TLS state last published; when readiness moved, the plane is marked dirty so the next round
publishes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from gossamer.controlplane.tls_readiness import TlsReadiness
from gossamer.controlplane.tls_shared import SharedTls
from gossamer.model import ModelSnapshot
from gossamer.translate.tls import TlsState
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.snapshot import Snapshot

#: how long ``follow`` lets ACKs gather before it judges readiness again (s)
COALESCE = 0.02


class TlsFollower:
    def __init__(
        self,
        tls: TlsReadiness,
        monitor: XdsMonitor,
        model: Callable[[], ModelSnapshot | None],
        published: Callable[[], TlsState],
        mark_dirty: Callable[[], None],
    ) -> None:
        self.tls = tls
        self._monitor = monitor
        self._model = model
        self._published = published
        self._mark_dirty = mark_dirty
        #: agent id -> its proxies whose Envoy holds its secrets (the agent's last report)
        self._holding: dict[str, frozenset[str]] = {}

    def judge(self) -> None:
        """Judge readiness against the state last published; mark dirty if it moved."""
        model = self._model()
        if model is not None and self.tls.refresh(model, self._published()):
            self._mark_dirty()

    def set_capable(self, node_ids: frozenset[str]) -> None:
        """Proxies whose Envoy gets secrets over SDS (the others are given no TLS): the
        connected proxies whose node metadata says so (``XdsMonitor.on_sds_capable``). Told
        before a new proxy's first snapshot is built, so that one already takes TLS."""
        if self.tls.set_capable(node_ids):
            self._mark_dirty()

    def set_secrets_held(self, agent_id: str, node_ids: frozenset[str]) -> None:
        """``agent_id``'s report (with its heartbeat) of its proxies whose Envoy ACKed its
        ``identity`` and ``trust-bundle`` over SDS; replaces its last report. The caller
        checked that the agent registered those proxies' Workloads. Only such a sidecar
        counts as ready for mTLS (``controlplane.tls_readiness``)."""
        if node_ids:
            self._holding[agent_id] = node_ids
        else:
            self._holding.pop(agent_id, None)
        if self.tls.set_holding(frozenset[str]().union(*self._holding.values())):
            self.judge()

    def shared(self) -> SharedTls:
        """This replica's mTLS readiness for the others, and theirs taken in."""
        return SharedTls(self.tls, self._model, self._published, self._mark_dirty)

    async def follow(self) -> None:
        """After every ACK, see whether a sidecar became ready for mTLS or may now refuse
        plaintext."""
        while True:
            progress = self._monitor.progress_event()
            self.judge()
            await progress.wait()
            # A round's ACKs come in bursts (953 for one change at 1k x 1,000), and a
            # judgement reads every connected proxy: judge a burst once, not per ACK.
            await asyncio.sleep(COALESCE)

    async def wait_strict(
        self,
        deadline: float,
        publish: Callable[[], Awaitable[list[tuple[str, Snapshot]]]],
        latest: Callable[[str], Snapshot | None],
    ) -> list[str]:
        """``apply --wait`` and mTLS: a sidecar of a ``strict`` service refuses plaintext a
        few rounds after the change that asked for it (``tls_readiness``: ready, marked,
        enforced, each after ACKs or its host's report). Wait until every connected one
        does (``publish``ing each step), so that when ``--wait`` returns a client meets what
        was applied; the node ids still taking plaintext at ``deadline`` (loop time)."""
        loop = asyncio.get_running_loop()
        while True:
            model = self._model()
            assert model is not None
            published = self._published()
            pending = self.tls.strict_pending(model, published)
            remaining = deadline - loop.time()
            if not pending or remaining <= 0:
                return pending
            progress = self._monitor.progress_event()
            if self.tls.refresh(model, published):
                await self._monitor.wait_synced(await publish(), remaining, latest)
                continue
            # an ACK, or (checked each second) a host's report of its secrets, moves it on
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await progress.wait()
