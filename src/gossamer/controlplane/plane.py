"""The control plane: store -> model snapshot -> translate -> per-proxy xDS snapshots.

It is the only writer of the model snapshot it translates. Applies are serialised, validated
against the newest state, made durable, and then published; the store's watch brings in
changes written by anyone else (a later etcd backend, several replicas).
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TypedDict, Unpack

from gossamer.controlplane.admission import (
    Admission,
    CheckedModels,
    Validator,
    authorize,
    diff_against,
)
from gossamer.controlplane.apply_wait import published_and_acked
from gossamer.controlplane.debounce import Debouncer
from gossamer.controlplane.enforcement import Enforcement
from gossamer.controlplane.leadership import Leadership, SoleLeader
from gossamer.controlplane.model_follow import ModelFollower
from gossamer.controlplane.publisher import PUBLISH_SLICE, Publisher
from gossamer.controlplane.route_wait import RouteWait
from gossamer.controlplane.service import ApplyResult, ControlPlaneStatistics, Diff
from gossamer.controlplane.tls_follow import TlsFollower
from gossamer.controlplane.tls_readiness import TlsReadiness
from gossamer.controlplane.unreachable import UnreachableHosts
from gossamer.errors import FieldError, NotFoundError, ValidationError
from gossamer.model import ModelSnapshot
from gossamer.model.base import Resource
from gossamer.store.base import Store
from gossamer.store.etcd_health import StoreHealth
from gossamer.translate.proxy import Translator
from gossamer.types import Manifest, ProxyIdentity, ResourceKey
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.status import ProxyStatus

log = logging.getLogger(__name__)

#: told of stored changes: each changed key with its resource now (None: deleted), and the
#: revision that holds them
ChangeListener = Callable[[Mapping[ResourceKey, Resource | None], int], None]


class ApplyOptions(TypedDict, total=False):
    """How :meth:`ControlPlane.apply` applies."""

    #: validate only, store nothing
    dry_run: bool
    #: wait (up to ``wait_timeout`` s) until every affected proxy ACKed the change
    wait: bool
    wait_timeout: float
    #: keys deleted in the same transaction
    deletes: Sequence[ResourceKey]
    #: the agent id making the change (None: a user); resources an agent registered can
    #: only be changed by it
    owner: str | None
    #: admit the control plane's own kinds (join tokens, agents)
    internal: bool
    #: a singleton's write: made only while this replica leads (``leadership``), fenced
    fenced: bool


class ControlPlane:
    def __init__(self, store: Store, cache: SnapshotCache, monitor: XdsMonitor) -> None:
        self.store = store
        self.cache = cache
        self.monitor = monitor
        self.ready = False
        #: whether the store answers, if it can tell (etcd): while lost, writes fail at once
        self.store_health: StoreHealth | None = None
        #: whether this replica runs the singletons; the fence of their writes
        self.leadership: Leadership = SoleLeader()
        self._apply_lock = asyncio.Lock()
        #: when to publish after changes (``_mark_dirty``)
        self._debounce = Debouncer()
        #: checks what an apply would make (an apply on a model known consistent checks
        #: only what it changes)
        self._admission = Admission(CheckedModels())
        self._listeners: list[tuple[frozenset[str], ChangeListener]] = []
        #: the model, as the store has it (read at ``load``, then the watch's changes)
        self._follower = ModelFollower(store, self._admission.checked, self._mark_dirty, self._tell)
        #: hosts the liveness rule declared dead: their workloads are published unhealthy
        self.liveness = UnreachableHosts()
        #: which sidecars take mTLS, from their ACKs (docs/security.md, "mTLS modes")
        self.tls = TlsReadiness(cache, monitor)
        #: NGAC access lists compiled for enforcing services (``attach`` the engine)
        self.enforcement = Enforcement(self._mark_dirty)
        #: builds snapshots (a new proxy's at once, the rest in debounced rounds)
        self.publisher = Publisher(cache, self._loaded_view, self.tls.state, self.enforcement.state)
        #: waits until a host's workloads are held by every proxy routing to them
        self.route_wait = RouteWait(cache, monitor, lambda: self.model, self.publish)
        #: what moves mTLS readiness: SDS capability, agents' reports of secrets, ACKs
        publisher = self.publisher
        self.mtls = TlsFollower(
            self.tls, monitor, lambda: self.model, lambda: publisher.published_tls, self._mark_dirty
        )
        monitor.set_registered(self._registered)
        monitor.on_sds_capable(self.mtls.set_capable)

    # -- running -----------------------------------------------------------------------------

    @property
    def model(self) -> ModelSnapshot | None:
        """The mesh as stored (None until ``load``)."""
        return self._follower.model

    async def load(self) -> None:
        """Read the whole store into the model; proxies get nothing before this is done."""
        await self._follower.load()
        self.ready = True
        self._mark_dirty()

    async def run(self) -> None:
        """Watch the store and publish snapshots until cancelled. ``load`` first."""
        assert self.model is not None, "call load() before run()"
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._follower.follow())
            tg.create_task(self._publisher())
            tg.create_task(self.publisher.greet())
            tg.create_task(self.mtls.follow())
            tg.create_task(self._admission.checked.check_loaded(self.model))

    def add_listener(self, kinds: set[str], listener: ChangeListener) -> None:
        """Tell ``listener`` of every stored change to resources of ``kinds``, whoever wrote
        it: this plane's applies and deletes once durable, anyone else's as the watch brings
        them in; in revision order, each change once. This is how the NGAC engine follows
        AccessPolicy and AccessCommand resources without a watch of its own."""
        self._listeners.append((frozenset(kinds), listener))

    def _tell(self, keys: Iterable[ResourceKey]) -> None:
        """Tell the listeners what became of ``keys`` in the current model."""
        model = self.model
        assert model is not None
        for kinds, listener in self._listeners:
            changes = {k: model.resources.get(k) for k in keys if k.kind in kinds}
            if not changes:
                continue
            try:
                listener(changes, model.revision)
            except Exception:  # the change is stored: a listener's bug must not undo that
                log.exception("a change listener failed on revision %d", model.revision)

    def _mark_dirty(self) -> None:
        self._debounce.mark()

    async def _publisher(self) -> None:
        await self._debounce.run(self._debounce_s, self.publish)

    def _debounce_s(self) -> float:
        assert self.model is not None
        return self.model.mesh.spec.debounceMs / 1000

    # -- liveness ----------------------------------------------------------------------------

    @property
    def unreachable(self) -> frozenset[str]:
        """Hosts the liveness rule declared dead: their workloads are published unhealthy."""
        return self.liveness.hosts

    def set_unreachable(self, hosts: frozenset[str]) -> None:
        """Publish the workloads of ``hosts`` unhealthy (in memory only: the store keeps
        what their agents reported, which holds again once a host is back)."""
        if self.liveness.set(hosts):
            self._mark_dirty()

    def _translated(self) -> ModelSnapshot:
        """The model proxies see: ``self.model`` with unreachable hosts' workloads unhealthy."""
        assert self.model is not None
        return self.liveness.view(self.model)

    def _loaded_view(self) -> ModelSnapshot | None:
        return None if self.model is None else self._translated()

    def _registered(self, proxy: ProxyIdentity) -> bool:
        """Does ``proxy``'s Workload or Gateway exist? (a disconnected one is remembered)"""
        return self.model is not None and proxy.resource_key in self.model.resources

    # -- publishing --------------------------------------------------------------------------

    async def publish(
        self, seen_at: float | None = None, *, slice_s: float = PUBLISH_SLICE
    ) -> list[tuple[str, Snapshot]]:
        """Build and publish snapshots for every connected proxy from the model as it is
        now; return what changed. Yields to the loop after each ``slice_s`` of work
        (``math.inf``: never, as before; see ``Publisher``).

        The round's TLS state is published when it ends: ACKs that came in while it was
        going out were judged against the round before, so readiness is judged again here
        (else, with no ACK after it, a strict sidecar kept taking plaintext)."""
        try:
            changed = await self.publisher.publish(seen_at, slice_s)
        finally:
            # every publish counts for the debounce, ``apply --wait``'s too: a change made
            # just after one waits for the burst to end
            self._debounce.published()
        self.mtls.judge()
        return changed

    @property
    def translator(self) -> Translator:
        return self.publisher.translator

    # -- operations (ControlPlaneService) --------------------------------------------------

    async def _check(
        self, puts: Sequence[Resource], deletes: Sequence[ResourceKey]
    ) -> ModelSnapshot:
        return await self._admission.check(self.model, puts, deletes)

    def add_validator(self, kinds: set[str], validate: Validator) -> None:
        """Also check applies touching ``kinds`` with ``validate(new model) -> errors``
        (e.g. the NGAC engine: do the AccessPolicy resources still make a valid graph?)."""
        self._admission.add_validator(kinds, validate)

    async def apply(
        self, resources: Sequence[Resource], **options: Unpack[ApplyOptions]
    ) -> ApplyResult:
        """Apply puts (and ``deletes``) in one transaction (:class:`ApplyOptions`)."""
        self._check_store()
        async with self._apply_lock:
            return await self.apply_held(resources, **options)

    def _check_store(self) -> None:
        """Refuse a write at once while the store is lost (not after waiting for the lock)."""
        if self.store_health is not None:
            self.store_health.check()

    @property
    def apply_lock(self) -> asyncio.Lock:
        """Held by every apply and delete, through its publish and ``--wait``. The lock order
        is this lock, then the NGAC engine's: ``apply --wait`` publishes (freezing the graph)
        holding it, so an administrative batch takes it *before* its engine lock and
        writes its journal with :meth:`apply_held` (``server.authz.PlaneJournal.held``);
        the other order deadlocked a batch arriving during an ``--wait`` apply's write."""
        return self._apply_lock

    async def apply_held(
        self, resources: Sequence[Resource], **options: Unpack[ApplyOptions]
    ) -> ApplyResult:
        """:meth:`apply`, for a caller holding :attr:`apply_lock`."""
        return await self._follower.fresh(lambda: self._apply_once(resources, options))

    async def _apply_once(
        self, resources: Sequence[Resource], options: ApplyOptions
    ) -> ApplyResult:
        assert self.model is not None
        deletes = options.get("deletes", ())
        owner, internal = options.get("owner"), options.get("internal", False)
        authorize(self.model, resources, deletes, owner, internal)
        diff = diff_against(self.model, resources)
        diff.deleted.extend(k for k in deletes if self.model and k in self.model.resources)
        changed = [r for r in resources if r.key not in diff.unchanged]
        gone = list(diff.deleted)
        if not changed and not gone:
            return ApplyResult(self.model.revision if self.model else 0, diff)
        before = self.model
        after = await self._check(changed, gone)
        if options.get("dry_run", False):
            return ApplyResult(self.model.revision if self.model else 0, diff)
        fence = self.leadership.fence() if options.get("fenced", False) else None
        manifests = [r.to_manifest() for r in changed]
        write = self.store.apply(manifests, gone, fence=fence, unchanged_since=before.revision)
        wait, wait_timeout = options.get("wait", False), options.get("wait_timeout", 30.0)
        return await self._write(write, before, after, diff, wait, wait_timeout)

    async def delete(
        self,
        keys: Sequence[ResourceKey],
        *,
        wait: bool = False,
        wait_timeout: float = 30.0,
        owner: str | None = None,
    ) -> ApplyResult:
        self._check_store()
        async with self._apply_lock:
            return await self._follower.fresh(
                lambda: self._delete_once(keys, wait, wait_timeout, owner)
            )

    async def _delete_once(
        self, keys: Sequence[ResourceKey], wait: bool, wait_timeout: float, owner: str | None
    ) -> ApplyResult:
        assert self.model is not None
        authorize(self.model, (), keys, owner, internal=False)
        missing = [k for k in keys if self.model is not None and k not in self.model.resources]
        if missing:
            raise NotFoundError(f"{missing[0]} does not exist")
        before = self.model
        try:
            after = await self._check((), keys)
        except ValidationError as e:
            raise ValidationError(
                [
                    FieldError(f"cannot delete {', '.join(map(str, keys))}: {err}")
                    for err in e.errors
                ]
            ) from None
        write = self.store.apply(deletes=keys, unchanged_since=before.revision)
        diff = Diff(deleted=list(keys))
        return await self._write(write, before, after, diff, wait, wait_timeout)

    async def _write(
        self,
        write: Awaitable[int],
        before: ModelSnapshot,
        after: ModelSnapshot,
        diff: Diff,
        wait: bool,
        wait_timeout: float,
    ) -> ApplyResult:
        """Store an apply's ``write`` (checked on ``before``, making ``after``); the model
        takes it, and it is published (with ``wait``: by this call, until ACKed)."""
        # With ``wait`` this apply publishes the model itself, and names the proxies that
        # round changed: what the watch brings in meanwhile is left to that round (a round
        # of its own would publish it first, and the apply would wait for nobody).
        self._follower.publish_owed = wait
        try:
            revision = await write
            keys = [*diff.created, *diff.updated, *diff.deleted]
            if not await self._follower.stored(revision, before, after, keys):
                return ApplyResult(revision, diff)  # nothing written: nothing to publish
            if not wait:
                self._mark_dirty()
                return ApplyResult(revision, diff)
            self._follower.publish_owed = False  # (what the watch brings in now: next round)
            return await published_and_acked(
                revision,
                diff,
                wait_timeout,
                publish=self.publish,
                monitor=self.monitor,
                latest=self.cache.get,
                mtls=self.mtls,
            )
        finally:
            self._follower.publish_owed = False

    async def get(self, key: ResourceKey) -> Manifest:
        stored = await self.store.get(key)
        if stored is None:
            raise NotFoundError(f"{key} does not exist")
        return stored.manifest

    async def list(self, kind: str | None = None, namespace: str | None = None) -> list[Manifest]:
        stored, _ = await self.store.list(kind, namespace)
        return [s.manifest for s in stored]

    async def validate(self, resources: Sequence[Resource]) -> builtins.list[str]:
        try:
            await self._check(resources, ())
        except ValidationError as e:
            return [str(err) for err in e.errors]
        return []

    def proxy_status(self) -> builtins.list[ProxyStatus]:
        return self.monitor.statuses()

    def statistics(self) -> ControlPlaneStatistics:
        return ControlPlaneStatistics(
            ready=self.ready,
            revision=self.model.revision if self.model else 0,
            resources=len(self.model.resources) if self.model else 0,
            connected_proxies=len(self.cache.connected()),
            builds=self.publisher.builds,
            build_seconds=round(self.publisher.build_seconds, 6),
            memo_entries=len(self.translator.memo),
            store=self.store.statistics(),
            xds=self.cache.statistics(),
            leading=self.leadership.leading,
            leader=self.leadership.leader,
        )
