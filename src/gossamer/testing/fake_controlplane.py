"""``FakeControlPlane``: an in-memory ``ControlPlaneService`` for tests of its callers.

It admits and validates exactly as the real control plane does (the same admission rules,
pydantic models, ``check_references`` on the snapshot the change would produce, the store's
batch checks) and keeps resources in a dict with store-like revisions: every change that
does something gets a new revision, re-applying identical resources does not. It has no xDS
server: the proxies it reports are the ones a test adds with ``add_proxy``. Like the real
one, ``wait`` waits for the connected proxies whose config the change altered (it
translates their config before and after with the real translator) and returns them in the
order they connected — instantly, or after ``wait_timeout`` with ``WaitTimeoutError`` if one
of them was added with ``acks=False``.

tests/unit/api/test_fake_controlplane.py runs the same contract against both.

Failure injection: ``fail_next(error)`` makes the next apply or delete raise ``error``
without changing anything (e.g. ``StoreError`` or ``ConflictError``).

``statistics`` answers the real plane's ``ControlPlaneStatistics`` from the fake's own state:
its store is the ``"fake"`` backend (a dict keeping no history for watchers), its xDS cache
holds the connected proxies added with ``add_proxy``, and it never runs a publish round.
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass

from gossamer.controlplane.admission import authorize
from gossamer.controlplane.service import ApplyResult, ControlPlaneStatistics, Diff
from gossamer.errors import (
    FieldError,
    GossamerError,
    NotFoundError,
    ValidationError,
    WaitTimeoutError,
)
from gossamer.model import ModelSnapshot, Resource, check_references
from gossamer.store.base import StoreStatistics
from gossamer.store.memory import prepare_apply
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.types import Manifest, ProxyIdentity, ResourceKey
from gossamer.xds.cache import SnapshotCacheStatistics
from gossamer.xds.status import ProxyStatus


@dataclass(frozen=True, slots=True)
class _Entry:
    resource: Resource
    manifest: Manifest
    revision: int
    create_revision: int


@dataclass(slots=True)
class _FakeProxy:
    status: ProxyStatus
    acks: bool
    #: its config as last "pushed" (translated from the model)
    config: ProxyResources | None = None

    @property
    def identity(self) -> ProxyIdentity:
        s = self.status
        return ProxyIdentity("gateway" if s.kind == "gateway" else "sidecar", s.namespace, s.name)


def _canonical(manifest: Manifest) -> str:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"))


class FakeControlPlane:
    """In-memory ``ControlPlaneService`` with real validation and no data plane."""

    def __init__(self, *, ready: bool = True) -> None:
        #: read by the API's /readyz
        self.ready = ready
        self._entries: dict[ResourceKey, _Entry] = {}
        self._revision = 0
        self._proxies: dict[str, _FakeProxy] = {}
        self._fail_next: GossamerError | None = None
        self._translator = Translator()

    # -- test controls -----------------------------------------------------------------

    def add_proxy(self, status: ProxyStatus, *, acks: bool = True) -> None:
        """Report ``status`` as a proxy; ``acks=False``: every ``wait`` for it times out."""
        self._proxies.pop(status.node_id, None)  # a reconnect: last in the connection order
        proxy = _FakeProxy(status, acks)
        proxy.config = self._translate(proxy)
        self._proxies[status.node_id] = proxy

    def remove_proxy(self, node_id: str) -> None:
        if self._proxies.pop(node_id, None) is None:
            raise NotFoundError(f"no proxy {node_id!r} was added to this FakeControlPlane")

    def fail_next(self, error: GossamerError) -> None:
        """The next apply or delete raises ``error`` and changes nothing."""
        self._fail_next = error

    @property
    def revision(self) -> int:
        return self._revision

    # -- ControlPlaneService -----------------------------------------------------------

    def _snapshot(self) -> ModelSnapshot:
        return ModelSnapshot(
            self._revision,
            {k: e.resource for k, e in self._entries.items()},
            {k: e.create_revision for k, e in self._entries.items()},
        )

    def _take_failure(self) -> None:
        error, self._fail_next = self._fail_next, None
        if error is not None:
            raise error

    async def apply(
        self,
        resources: Sequence[Resource],
        *,
        dry_run: bool = False,
        wait: bool = False,
        wait_timeout: float = 30.0,
    ) -> ApplyResult:
        model = self._snapshot()
        authorize(model, resources, (), None, False)
        diff = Diff()
        changed: list[tuple[Resource, Manifest]] = []
        for r in resources:
            manifest = r.to_manifest()
            old = self._entries.get(r.key)
            if old is None:
                diff.created.append(r.key)
            elif _canonical(old.manifest) == _canonical(manifest):
                diff.unchanged.append(r.key)
                continue
            else:
                diff.updated.append(r.key)
            changed.append((r, manifest))
        if not changed:
            return ApplyResult(self._revision, diff)
        errors = check_references(model.with_changes(puts=[r for r, _ in changed]))
        if errors:
            raise ValidationError(errors)
        if dry_run:
            return ApplyResult(self._revision, diff)
        prepare_apply([m for _, m in changed], ())  # the store's batch checks
        self._take_failure()
        self._revision += 1
        for r, manifest in changed:
            old = self._entries.get(r.key)
            created = old.create_revision if old else self._revision
            self._entries[r.key] = _Entry(r, manifest, self._revision, created)
        return await self._after_write(diff, wait, wait_timeout)

    async def delete(
        self, keys: Sequence[ResourceKey], *, wait: bool = False, wait_timeout: float = 30.0
    ) -> ApplyResult:
        model = self._snapshot()
        authorize(model, (), keys, None, False)
        missing = [k for k in keys if k not in self._entries]
        if missing:
            raise NotFoundError(
                f"{missing[0]} does not exist: list what does with `gossamer get {missing[0].kind}`"
            )
        errors = check_references(model.with_changes(deletes=keys))
        if errors:
            raise ValidationError(
                [FieldError(f"cannot delete {', '.join(map(str, keys))}: {e}") for e in errors]
            )
        prepare_apply((), keys)  # the store's batch checks
        self._take_failure()
        self._revision += 1
        for k in keys:
            del self._entries[k]
        return await self._after_write(Diff(deleted=list(keys)), wait, wait_timeout)

    def _translate(self, proxy: _FakeProxy) -> ProxyResources:
        try:
            return self._translator.proxy(self._snapshot(), proxy.identity)
        except NotFoundError:
            return ProxyResources()  # its Workload/Gateway is gone: it serves nothing

    async def _after_write(self, diff: Diff, wait: bool, timeout: float) -> ApplyResult:  # noqa: ASYNC109
        """Push to the connected proxies; with ``wait`` wait for those whose config changed."""
        changed = []
        for p in self._proxies.values():
            if p.status.connected:
                config = self._translate(p)
                if config != p.config:
                    p.config = config
                    changed.append(p)
        if not wait:
            return ApplyResult(self._revision, diff)
        behind = [p.status.node_id for p in changed if not p.acks]
        if behind:
            await asyncio.sleep(timeout)
            raise WaitTimeoutError(
                f"the change is stored (revision {self._revision}) but {len(behind)} proxies "
                f"have not ACKed it within {timeout:g} s: {', '.join(behind[:5])}; see "
                "`gossamer proxy-status`"
            )
        return ApplyResult(self._revision, diff, [p.status.node_id for p in changed])

    async def get(self, key: ResourceKey) -> Manifest:
        entry = self._entries.get(key)
        if entry is None:
            raise NotFoundError(
                f"{key} does not exist: list what does with `gossamer get {key.kind}`"
            )
        return entry.manifest

    async def list(self, kind: str | None = None, namespace: str | None = None) -> list[Manifest]:
        return [
            e.manifest
            for k, e in sorted(self._entries.items())
            if (kind is None or k.kind == kind) and (namespace is None or k.namespace == namespace)
        ]

    async def validate(self, resources: Sequence[Resource]) -> builtins.list[str]:
        return [str(e) for e in check_references(self._snapshot().with_changes(puts=resources))]

    def proxy_status(self) -> builtins.list[ProxyStatus]:
        return [p.status for _, p in sorted(self._proxies.items())]

    def statistics(self) -> ControlPlaneStatistics:
        connected = [p for p in self._proxies.values() if p.status.connected]
        return ControlPlaneStatistics(
            ready=self.ready,
            revision=self._revision,
            resources=len(self._entries),
            connected_proxies=len(connected),
            builds=0,
            build_seconds=0.0,
            memo_entries=len(self._translator.memo),
            store=StoreStatistics(
                backend="fake",
                revision=self._revision,
                resources=len(self._entries),
                log_entries=0,
                compact_revision=self._revision,
                history=0,
                watchers=0,
            ),
            xds=SnapshotCacheStatistics(
                nodes=len(connected),
                snapshots=sum(1 for p in connected if p.config is not None),
                events=0,
            ),
        )
