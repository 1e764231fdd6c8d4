"""The control plane's operations, as the REST API and in-process callers use them.

``ControlPlaneService`` is the one surface the API layer calls; it hides the store, the
model snapshot, the translator and the xDS cache behind it.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gossamer.model.base import Resource
from gossamer.store.base import StoreStatistics
from gossamer.types import Manifest, ResourceKey
from gossamer.xds.cache import SnapshotCacheStatistics
from gossamer.xds.status import ProxyStatus


@dataclass(frozen=True, slots=True)
class Diff:
    """What an apply did (or, for a dry run, would do)."""

    created: list[ResourceKey] = field(default_factory=list)
    updated: list[ResourceKey] = field(default_factory=list)
    unchanged: list[ResourceKey] = field(default_factory=list)
    deleted: list[ResourceKey] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ApplyResult:
    revision: int
    diff: Diff
    #: with wait: the proxies whose snapshot changed and that have all ACKed it
    acked_by: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ControlPlaneStatistics:
    """The reconciler's counters, and those of the parts it owns (store, xDS cache):
    ``/v1/statistics`` answers them as ``plane``, ``store`` and ``xds``."""

    ready: bool
    #: the store revision the model was built from (0 while loading)
    revision: int
    resources: int
    connected_proxies: int
    #: publish rounds and the seconds they took in all
    builds: int
    build_seconds: float
    #: translations the translator keeps for reuse
    memo_entries: int
    store: StoreStatistics
    xds: SnapshotCacheStatistics
    #: whether this replica runs the singletons, and which replica does as last seen
    #: (docs/store.md, "Leader")
    leading: bool = True
    leader: str | None = "this process"


class ControlPlaneService(Protocol):
    @property
    def ready(self) -> bool:
        """True once the state is loaded and proxies are served; until then changes are
        refused (``NotReadyError``) and ``/readyz`` answers 503."""
        ...

    async def apply(
        self,
        resources: Sequence[Resource],
        *,
        dry_run: bool = False,
        wait: bool = False,
        wait_timeout: float = 30.0,
    ) -> ApplyResult:
        """Validate and store all resources atomically (nothing is applied on error).

        Raises ``ValidationError`` (fields and references, naming each resource),
        ``StoreError`` if it could not be made durable, and with ``wait``
        ``WaitTimeoutError`` if the change is stored but proxies did not ACK in time.
        """
        ...

    async def delete(self, keys: Sequence[ResourceKey], *, wait: bool = False) -> ApplyResult:
        """Delete; refused with ``ValidationError`` if other resources still refer to them."""
        ...

    async def get(self, key: ResourceKey) -> Manifest:
        """The stored manifest; ``NotFoundError`` if absent."""
        ...

    async def list(
        self, kind: str | None = None, namespace: str | None = None
    ) -> list[Manifest]: ...

    async def validate(self, resources: Sequence[Resource]) -> builtins.list[str]:
        """Errors (as text) applying these would cause against the current state; [] if fine."""
        ...

    def proxy_status(self) -> builtins.list[ProxyStatus]: ...

    def statistics(self) -> ControlPlaneStatistics:
        """Counters for introspection (``/v1/statistics``); Prometheus metrics are apart."""
        ...
