"""``FakeControlPlane``: an in-memory ``ControlPlaneService`` for tests of its callers.

It validates exactly as the real control plane does (pydantic models, then
``check_references`` on the snapshot the change would produce) and keeps resources in a
dict with store-like revisions: every change that does something gets a new revision,
re-applying identical resources does not. It has no xDS server: the proxies it reports are
the ones a test adds with ``add_proxy``, and ``wait`` means "every connected proxy that
the test said ACKs has ACKed" — instantly, or after ``wait_timeout`` with
``WaitTimeoutError`` if one of them was added with ``acks=False``.

Failure injection: ``fail_next(error)`` makes the next apply or delete raise ``error``
without changing anything (e.g. ``StoreError`` or ``ConflictError``).
"""

from __future__ import annotations

import asyncio
import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gossamer.controlplane.service import ApplyResult, Diff
from gossamer.controlplane.status import ProxyStatus
from gossamer.errors import (
    FieldError,
    GossamerError,
    NotFoundError,
    ValidationError,
    WaitTimeoutError,
)
from gossamer.model import ModelSnapshot, Resource, check_references
from gossamer.types import Manifest, ResourceKey


@dataclass(frozen=True, slots=True)
class _Entry:
    resource: Resource
    manifest: Manifest
    revision: int
    create_revision: int


@dataclass(slots=True)
class _FakeProxy:
    status: ProxyStatus
    config_dump: dict[str, object] | None
    acks: bool


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
        self._applies = 0
        self._deletes = 0

    # -- test controls -----------------------------------------------------------------

    def add_proxy(
        self,
        status: ProxyStatus,
        config_dump: dict[str, object] | None = None,
        *,
        acks: bool = True,
    ) -> None:
        """Report ``status`` as a proxy; ``acks=False`` makes every ``wait`` time out."""
        self._proxies[status.node_id] = _FakeProxy(status, config_dump, acks)

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
        keys = [r.key for r in resources]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValidationError(
                [FieldError("given twice in the same apply", resource=str(k)) for k in twice]
            )
        errors = check_references(self._snapshot().with_changes(puts=resources))
        if errors:
            raise ValidationError(errors)
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
        if dry_run:
            return ApplyResult(self._revision, diff)
        self._take_failure()
        if changed:
            self._revision += 1
            for r, manifest in changed:
                old = self._entries.get(r.key)
                created = old.create_revision if old else self._revision
                self._entries[r.key] = _Entry(r, manifest, self._revision, created)
        self._applies += 1
        acked = await self._wait(wait, wait_timeout) if changed else []
        return ApplyResult(self._revision, diff, acked)

    async def delete(self, keys: Sequence[ResourceKey], *, wait: bool = False) -> ApplyResult:
        missing = [k for k in keys if k not in self._entries]
        if missing:
            raise NotFoundError(
                ", ".join(str(k) for k in missing)
                + " does not exist: list what does with `gossamer get KIND`"
            )
        before = {str(e) for e in check_references(self._snapshot())}
        after = check_references(self._snapshot().with_changes(deletes=keys))
        broken = [e for e in after if str(e) not in before]
        if broken:
            raise ValidationError(
                [
                    replace(
                        e,
                        message=f"{e.message} (after this delete: delete or change "
                        f"{e.resource} in the same request)",
                    )
                    for e in broken
                ]
            )
        self._take_failure()
        unique = list(dict.fromkeys(keys))
        self._revision += 1
        for k in unique:
            del self._entries[k]
        self._deletes += 1
        acked = await self._wait(wait, 30.0)
        return ApplyResult(self._revision, Diff(deleted=unique), acked)

    async def _wait(self, wait: bool, timeout: float) -> list[str]:  # noqa: ASYNC109
        if not wait:
            return []
        connected = [p for p in self._proxies.values() if p.status.connected]
        stuck = sorted(p.status.node_id for p in connected if not p.acks)
        if stuck:
            await asyncio.sleep(timeout)
            raise WaitTimeoutError(
                f"revision {self._revision} is stored, but {', '.join(stuck)} did not ACK "
                f"within {timeout:g} s; see `gossamer proxy-status`"
            )
        return sorted(p.status.node_id for p in connected)

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

    async def proxy_config(self, node_id: str) -> dict[str, object]:
        proxy = self._proxies.get(node_id)
        if proxy is None:
            raise NotFoundError(
                f"no proxy {node_id!r} is known: list them with `gossamer proxy-status`"
            )
        if proxy.config_dump is None:
            raise NotFoundError(f"proxy {node_id!r} published no admin address to read from")
        return proxy.config_dump

    def statistics(self) -> dict[str, object]:
        return {
            "revision": self._revision,
            "resources": len(self._entries),
            "proxies": sum(1 for p in self._proxies.values() if p.status.connected),
            "applies": self._applies,
            "deletes": self._deletes,
        }
