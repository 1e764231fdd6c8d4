"""Building and publishing per-proxy snapshots without holding the event loop.

A publish translates the model for every connected proxy: ~160 ms of CPU at 1000 services
and 10 gateways, of which one proxy alone may take 100 ms (the first to see a changed Route
re-checks every cluster). On the event loop that would stop every ADS stream (ACKs), API
call and the store watch for that long. So translation runs in a worker thread, in batches
of about ``PUBLISH_SLICE`` of work; the loop takes each batch's snapshots and publishes them.
Under the GIL the thread buys responsiveness (the loop gets the interpreter back within the
switch interval: 1 ms while serving, see ``server.app``), not throughput (docs/xds.md says
why not a process). An endpoint round is the exception: patching a proxy's snapshot merges
endpoint sets built once per zone (``incremental.EndpointPatch``), ~30 us a sidecar at 1k
services, so it runs on the loop in slices of at most ``PATCH_SLICE``: handing it to the
thread cost more than the work (953 proxies patched: 20 ms more of the plane's one core,
and the last proxy ACKed ~15 % later; ``bench/xds_scale.py``).

A round works on the model it took at its start (a change arriving meanwhile marks the plane
dirty: the next round publishes it); rounds never overlap (one asyncio lock), and the
translator and serializer are touched by one batch at a time (one thread lock). A proxy
that opens its first stream is only noted (``SnapshotCache.attach`` runs in the stream's
handler); ``greet`` builds its first snapshot at once, without the debounce of a round.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from gossamer.authz.service_access import NO_ACCESS, AccessState
from gossamer.controlplane.enforcement import with_access_change
from gossamer.controlplane.frozen_heap import FrozenHeap
from gossamer.controlplane.incremental import (
    EndpointPatch,
    endpoint_change,
    with_tls_change,
)
from gossamer.controlplane.route_scope import route_change
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.errors import NotFoundError
from gossamer.model import ModelSnapshot
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.tls import NO_TLS, TlsState
from gossamer.types import ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.serializer import Serializer, Versioned
from gossamer.xds.snapshot import Snapshot

log = logging.getLogger(__name__)

#: work at most this long (s) before letting the event loop run other tasks
PUBLISH_SLICE = 0.005

#: an endpoint round patches on the event loop at most this long (s) before yielding (a
#: patch waits for the translator's lock if a greeting's batch in the thread holds it)
PATCH_SLICE = 0.001

#: a round's first batch works ``PUBLISH_SLICE / FIRST_SLICE_DIVISOR``, each next one twice
#: as long as the one before, up to ``PUBLISH_SLICE``
FIRST_SLICE_DIVISOR = 8

#: proxies whose patched snapshots (an endpoint change) are published per loop pass
PATCHED_PER_PASS = 32
#: Endpoint-only rounds patch the proxies holding what changed and leave the translation
#: caches' older entries in place; a full round (which marks what every proxy uses) prunes
#: them. A full round costs as much as translating every proxy (~4 s at 1,000 proxies and
#: 1,000 services), so it is taken once the caches have grown by a quarter of their size
#: after the last prune (at least ``PRUNE_SLACK`` entries), not after a count of rounds:
#: memory stays within ~1.25x the live set, and full rounds are ~8x rarer at 1k x 1,000
#: (~9 entries per endpoint change on a 31k-entry live set). An endpoint change that lands
#: behind a full round waits for it (``bench/xds_scale.py`` measured that as its p99).
PRUNE_SLACK = 5_000

_T = TypeVar("_T")


#: one proxy's job: build it in full (None) or patch this snapshot's endpoints
_Job = tuple[ProxyIdentity, Snapshot | None]
_Built = list[tuple[str, Snapshot | None]]
#: what a snapshot is translated from: the model, TLS readiness and NGAC access state
_Inputs = tuple[ModelSnapshot, TlsState, AccessState]


async def _no_access(model: ModelSnapshot) -> AccessState:
    return NO_ACCESS


class Publisher:
    def __init__(
        self,
        cache: SnapshotCache,
        model: Callable[[], ModelSnapshot | None],
        tls: Callable[[], TlsState] = lambda: NO_TLS,
        access: Callable[[ModelSnapshot], Awaitable[AccessState]] | None = None,
    ) -> None:
        self.cache = cache
        #: the model proxies see now (None: not loaded yet)
        self._model = model
        #: which proxies take mTLS now (``controlplane.tls_readiness``), and what the last
        #: round translated with
        self.tls_state = tls
        self.published_tls: TlsState = NO_TLS
        #: every enforced service's compiled NGAC access lists for a round translating a
        #: model (``controlplane.enforcement``), and what the last round translated with
        self.access_state = access or _no_access
        self.published_access: AccessState = NO_ACCESS
        self.translator = Translator()
        self.serializer = Serializer()
        #: held while the translator and serializer work (in a worker thread or inline)
        self._translating = threading.Lock()
        self.builds = 0
        self.build_seconds = 0.0
        self.incremental_rounds = 0
        #: after each round, what is alive is moved out of the collector's walks
        #: (``controlplane.frozen_heap``): a process-wide setting, so the server turns it on
        self.heap = FrozenHeap()
        #: entries the translation caches held after the last full round pruned them
        self._pruned_size = 0
        #: the model the last round translated
        self._published_model: ModelSnapshot | None = None
        self._lock = asyncio.Lock()
        #: attached proxies not built yet, and an event set when one arrives
        self._fresh: dict[str, ProxyIdentity] = {}
        self._arrived = asyncio.Event()
        #: proxies built outside a round (by ``greet``), with what they were built from: the
        #: next round patches them like the others only if that is what it starts from
        #: (``_published``), and rebuilds them in full otherwise
        self._off_round: dict[str, _Inputs] = {}
        cache.on_connect(self._on_connect)

    def _on_connect(self, proxy: ProxyIdentity) -> None:
        self._fresh[proxy.node_id] = proxy
        self._arrived.set()

    async def greet(self, slice_s: float = PUBLISH_SLICE) -> None:
        """Build the first snapshot of each newly connected proxy, until cancelled."""
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            model = self._model()
            if model is None:
                continue  # loading: the first round builds every connected proxy
            jobs: list[_Job] = [(p, None) for p in self._fresh.values()]
            self._fresh.clear()
            tls = self.tls_state()
            access = await self.access_state(model)
            now = time.monotonic()
            size = self._caches_size()
            with self.heap.paused():
                async for built in self._work(jobs, model, None, now, slice_s, tls, access):
                    for node_id, snap in built:
                        fresh = self.cache.attached(node_id) and self.cache.get(node_id) is None
                        if snap is not None and fresh:
                            self.cache.set(node_id, snap)
                            self._off_round[node_id] = (model, tls, access)
            # What new proxies use is alive, not garbage to prune: after a restart every
            # proxy is greeted, and counting that growth made the first endpoint change
            # a full round of every proxy (bench/xds_scale.py's endpoint-change p99).
            self._pruned_size += max(0, self._caches_size() - size)
            self.heap.built()

    async def publish(
        self, seen_at: float | None = None, slice_s: float = PUBLISH_SLICE
    ) -> list[tuple[str, Snapshot]]:
        """Build and publish snapshots for every connected proxy from the model as it is
        now; return what changed. ``slice_s=math.inf`` does it all on the event loop in
        one go (the old behaviour, for comparison in bench/xds_convergence.py)."""
        async with self._lock:
            with self.heap.paused():
                return await self._round(seen_at, slice_s)

    async def _round(self, seen_at: float | None, slice_s: float) -> list[tuple[str, Snapshot]]:
        """``publish``, holding its lock."""
        model = self._model()
        if model is None:
            return []
        created = seen_at or time.monotonic()
        tls = self.tls_state()
        access = await self.access_state(model)
        change = scope = None
        if self._published_model is not None and not self._caches_outgrown():
            change = endpoint_change(self._published_model, model)
            if change is not None:
                change = with_tls_change(change, self.published_tls, tls, model)
            if change is not None:
                change = with_access_change(change, self.published_access, access, model)
            elif tls == self.published_tls and access is self.published_access:
                scope = route_change(self._published_model, model)
        jobs: list[_Job] = []
        for proxy in self.cache.connected():
            node_id = proxy.node_id
            last = self.cache.get(node_id)
            # a proxy greeted from other inputs than this round starts from is rebuilt
            stale = node_id in self._off_round and not self._published(self._off_round.pop(node_id))
            if (
                scope is not None
                and last is not None
                and not stale
                and not scope.reaches(model, proxy)
            ):
                continue  # nothing it holds reads the changed Routes: it keeps them
            own = change is not None and (proxy.namespace, proxy.name) in (
                change.workloads if proxy.kind == "sidecar" else change.gateways
            )
            patched = change is not None and not own and not stale
            jobs.append((proxy, last if patched else None))
            self._fresh.pop(node_id, None)
        # (the patches first: they run on the loop, the full builds after in the thread)
        jobs.sort(key=lambda job: job[1] is None)
        changed = []
        replaced: list[Versioned] = []
        patch = None
        if change is not None:  # (its sets are built as each caller zone first needs them)
            patch = EndpointPatch(model, change.services, self.translator, self.serializer, tls)
        async for built in self._work(jobs, model, patch, created, slice_s, tls, access):
            for node_id, snap in built:
                if snap is None or not self.cache.attached(node_id):
                    continue  # nothing new for it, or it left meanwhile
                previous = self.cache.get(node_id)
                if self.cache.set(node_id, snap):
                    changed.append((node_id, snap))
                    if scope is not None and previous is not None:
                        replaced.extend(_replaced(previous, snap))
                    # its streams take their turn before the next proxies' are woken:
                    # the loop never runs all of a batch's streams in one go. A
                    # patched snapshot's streams send a few endpoint sets: they go
                    # in groups (one loop pass per proxy was about a third of a 1,000-proxy
                    # endpoint change's time)
                    if change is None or len(changed) % PATCHED_PER_PASS == 0:
                        await asyncio.sleep(0)
        if change is None and scope is None:
            # Only full rounds prune: an incremental round touches a few entries, and
            # pruning after it would throw away what every proxy's next full build reuses.
            await self._call(self._prune, slice_s)
            self.incremental_rounds = 0
        else:
            self.incremental_rounds += 1
            self.heap.built()
        if replaced:
            # A route-scoped round replaces whole route tables (a gateway's: 1,000
            # virtual hosts at 1k services): their encodings go now, not at the next
            # prune, which could be hundreds of route changes away.
            await self._call(functools.partial(self._forget, replaced), slice_s)
        self._published_model = model
        self.published_tls = tls
        self.published_access = access
        self.builds += 1
        return changed

    def _published(self, inputs: _Inputs) -> bool:
        """Are ``inputs`` what the last round translated from? A snapshot built from them
        is then what that round would have built: the next round may patch it. (After a
        restart every proxy is greeted from the model the first round published; rebuilding
        them all made the first endpoint change 1.37 s against the next one's 0.36 s.)"""
        model, tls, access = inputs
        return (
            model is self._published_model
            and tls == self.published_tls
            and access is self.published_access
        )

    async def _work(
        self,
        jobs: list[_Job],
        model: ModelSnapshot,
        patch: EndpointPatch | None,
        created: float,
        slice_s: float,
        tls: TlsState,
        access: AccessState,
    ) -> AsyncIterator[_Built]:
        """Run ``jobs`` in batches of about ``slice_s`` of work each, in a worker thread
        (inline, in one batch, when ``slice_s`` is infinite); yield each batch's results
        on the event loop. The first batches are shorter (from ``slice_s / 8``, doubling):
        the loop has nothing to send until the first one is back. Patches (``patch``)
        run on the loop, ``PATCH_SLICE`` at most per batch."""
        done = 0
        budget = slice_s / FIRST_SLICE_DIVISOR
        while done < len(jobs):
            if patch is not None and jobs[done][1] is not None and not math.isinf(slice_s):
                built, done = self._batch(
                    jobs, done, PATCH_SLICE, model, patch, created, tls, access, patches_only=True
                )
            else:
                built, done = await self._call(
                    functools.partial(
                        self._batch, jobs, done, budget, model, patch, created, tls, access
                    ),
                    slice_s,
                )
                budget = min(slice_s, 2 * budget)
            yield built

    async def _call(self, work: Callable[[], _T], slice_s: float) -> _T:
        if math.isinf(slice_s):
            return work()
        return await asyncio.to_thread(work)

    def _batch(
        self,
        jobs: list[_Job],
        start: int,
        slice_s: float,
        model: ModelSnapshot,
        patch: EndpointPatch | None,
        created: float,
        tls: TlsState,
        access: AccessState,
        patches_only: bool = False,
    ) -> tuple[_Built, int]:
        """Build from ``jobs[start]`` on until ``slice_s`` is used; return the results and
        where the next batch starts. Runs in a worker thread (or, ``patches_only``, on the
        loop, stopping before a job that is a full build): it touches only the translator
        and serializer (under their lock) and reads the cache."""
        out: _Built = []
        with self._translating:
            began = time.perf_counter()
            i = start
            while i < len(jobs):
                proxy, last = jobs[i]
                if patches_only and last is None:
                    break
                i += 1
                if last is not None and patch is not None:
                    snap: Snapshot | None = patch.apply(last, proxy, created)
                else:
                    snap = self.build(proxy, created, model, tls, access)
                out.append((proxy.node_id, snap))
                if time.perf_counter() - began >= slice_s:
                    break
            self.build_seconds += time.perf_counter() - began
        return out, i

    def _forget(self, replaced: list[Versioned]) -> None:
        with self._translating:
            self.serializer.forget(replaced)

    def _caches_size(self) -> int:
        return len(self.translator.memo) + len(self.serializer)

    def _caches_outgrown(self) -> bool:
        """Is it time for a full round to prune the translation caches?"""
        grown = self._caches_size() - self._pruned_size
        return grown > max(PRUNE_SLACK, self._pruned_size // 4)

    def _prune(self) -> None:
        with self._translating:
            self.translator.prune()
            self.serializer.prune()
            self._pruned_size = self._caches_size()
        self.heap.pruned(self._pruned_size)

    def build(
        self,
        proxy: ProxyIdentity,
        created: float,
        model: ModelSnapshot,
        tls: TlsState = NO_TLS,
        access: AccessState = NO_ACCESS,
    ) -> Snapshot | None:
        """``proxy``'s snapshot from ``model``, ``tls`` and ``access``; None: send it
        nothing new."""
        try:
            resources = self.translator.proxy(model, proxy, tls, access)
        except NotFoundError:
            if self.cache.get(proxy.node_id) is None:
                # Never configured by this control plane: its store was lost or replaced, or
                # it runs with a mistyped --data-dir. Send nothing: it keeps its last config
                # (fail static; issue 7, R1). One deleted while we serve it serves nothing.
                return None
            resources = ProxyResources()  # its Workload/Gateway is gone: it serves nothing
        except Exception:
            log.exception("translating for %s failed; it keeps its last config", proxy.node_id)
            return None
        if missing := resources.missing_references():
            # A translator bug, never the user's input (references are checked on apply).
            log.error(
                "config for %s is inconsistent (%s); it keeps its last config",
                proxy.node_id,
                "; ".join(missing[:5]),
            )
            return None
        # (diffed against what the proxy was last given: its streams then read only the
        # changed names of a changed type, and skip an unchanged type in O(1))
        previous = self.cache.get(proxy.node_id)
        return proxy_snapshot(resources, self.serializer, created, previous)


def _replaced(previous: Snapshot, current: Snapshot) -> list[Versioned]:
    """The resources ``previous`` held that ``current`` replaced or dropped."""
    out = []
    for rtype, diff in current.diffs.items():
        held, now = previous.of(rtype), current.of(rtype)
        for name in (*diff.changed, *diff.removed):
            old = held.get(name)
            if old is not None and now.get(name) is not old:
                out.append(old)
    return out
