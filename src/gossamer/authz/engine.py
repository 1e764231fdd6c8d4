"""The NGAC engine, kept as resources in the control plane's store.

**Source of truth.** The store holds two kinds of resources: ``AccessPolicy`` (declarative,
applied like every other resource) and ``AccessCommand`` (the journal: one entry per
accepted administrative batch, numbered, including the bootstrap and every obligation
response). The graph is always *derived*:

1. the bootstrap entry (so files may refer to ``gossamer:admins``),
2. every AccessPolicy, merged, applied as the system,
3. every other journal entry, in order, applied as the system (each was checked against
   its author's rights when it was accepted).

So files are the base layer and runtime changes an overlay replayed on top. Re-applying a
file rebuilds the graph from the new files plus the journal: an obligation's grant made
after the file was first applied survives the re-apply. A journal entry that no longer
applies (its node was removed from the files) is skipped and listed in
:meth:`AuthzEngine.statistics`; delete it, or restore the node, to clear it.

**One writer, one watcher.** The engine holds no store: it starts from the listed
resources, writes its journal through a :class:`CommandJournal` (the control plane's
admission) and is told of every stored change to its two kinds by the control plane
(:meth:`AuthzEngine.changed`, fed by the plane's one watch and its own applies).

Writes hold a lock; a batch is checked by running it and undoing it, its journal entries are
made durable, then replayed: decisions never see a change the store does not hold, and a
store failure changes nothing. A rebuild (policies or journal changed by other hands) builds
a new graph off to the side (in a thread) and swaps it in, and the old one's reference
cycles are broken so it is freed at once. An AccessPolicy change is first made in place
when that makes the graph a rebuild would; validating one before it is stored is tried in
place too (``authz.engine_writes``: trial runs, journal writes, replays, changes in place).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass

from gossamer.authz.command_journal import JOURNAL_NAMESPACE, CommandJournal, from_command
from gossamer.authz.decider import Decider
from gossamer.authz.engine_state import EngineState as EngineState  # re-exported
from gossamer.authz.engine_state import build_state as build_state  # re-exported
from gossamer.authz.engine_writes import EngineWrites
from gossamer.authz.explain import Explanation, access, explain
from gossamer.authz.graph import Graph
from gossamer.authz.obligations import Event, Firing
from gossamer.authz.pap import PAP, JournalEntry
from gossamer.errors import GossamerError
from gossamer.model.access_commands import Command
from gossamer.model.access_policy import AccessCommand, AccessPolicy
from gossamer.model.base import Resource
from gossamer.types import ResourceKey

log = logging.getLogger(__name__)

#: the kinds the engine is built from (and is told of changes to)
AUTHZ_KINDS = frozenset({"AccessPolicy", "AccessCommand"})


@dataclass(frozen=True, slots=True)
class AuthzEngineStatistics:
    """The graph's size, the decider's caches (``DeciderStatistics``, flattened) and what
    the last rebuild could not do; ``/v1/authz/statistics`` answers it."""

    nodes: int
    user_views: int
    target_views: int
    decisions: int
    obligations: int
    #: journal entries that no longer apply (see the module docstring)
    skipped_journal_entries: tuple[str, ...]
    #: why the last rebuild failed (the previous graph stays), or None
    load_error: str | None
    #: the newest store revision the engine has seen
    revision: int


class AuthzEngine:
    """Graph, decisions and administration, built from the listed resources and kept
    durable through a :class:`CommandJournal`."""

    def __init__(
        self,
        journal: CommandJournal,
        state: EngineState,
        policies: Mapping[ResourceKey, AccessPolicy],
        entries: Mapping[str, JournalEntry],
        revision: int,
    ) -> None:
        self._state = state
        #: what the graph is built from: AccessPolicy by key, journal entries by name
        self._policies = dict(policies)
        self._entries = dict(entries)
        #: the store revision of the newest change the engine was told of
        self._revision = revision
        #: why the last rebuild failed (the previous graph stays in force)
        self.load_error: str | None = None
        #: rebuilds after changes by other hands (an apply of AccessPolicy, another replica),
        #: in place or not
        self.rebuilds = 0
        #: of those, AccessPolicy changes made to the graph in place (``authz.policy_diff``)
        self.rebuilt_in_place = 0
        self._stale = False
        #: journal entries changed by other hands since the last rebuild (no diff then)
        self._journal_changed = False
        #: trial runs, journal writes, replays and AccessPolicy changes made in place
        self._writes = EngineWrites(journal, log)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @classmethod
    async def open(
        cls,
        journal: CommandJournal,
        resources: Iterable[Resource],
        revision: int,
        admin: str = "admin",
    ) -> AuthzEngine:
        """Build from ``resources`` as listed at ``revision`` (AccessPolicy, and
        AccessCommand in the journal's namespace; other kinds are ignored). On first start
        (no journal yet) the bootstrap administrator's entry is written through ``journal``.
        """
        policies: dict[ResourceKey, AccessPolicy] = {}
        entries: dict[str, JournalEntry] = {}
        for r in resources:
            if isinstance(r, AccessPolicy):
                policies[r.key] = r
            elif isinstance(r, AccessCommand) and r.metadata.namespace == JOURNAL_NAMESPACE:
                entries[r.metadata.name] = from_command(r)
        ordered = [entries[name] for name in sorted(entries)]
        error = None
        try:
            state = await asyncio.to_thread(build_state, list(policies.values()), ordered)
        except GossamerError as e:  # deny by default until the stored policies are fixed
            boot = [entry for entry in ordered if entry.cause == "bootstrap"]
            state = await asyncio.to_thread(build_state, [], boot)
            error = (
                f"the stored AccessPolicy resources do not make a valid graph; nothing "
                f"is granted until they are fixed: {e}"
            )
        engine = cls(journal, state, policies, entries, revision)
        engine.load_error = error
        if not entries:
            async with engine._writes.held(), engine._lock:
                with state.graph.transaction():
                    state.pap.bootstrap(admin)
                    await engine._write(state.pap.take_journal())
        return engine

    def _ordered(self) -> list[JournalEntry]:
        return [self._entries[name] for name in sorted(self._entries)]

    async def _write(self, entries: Sequence[JournalEntry]) -> None:
        """Make ``entries`` durable through the journal; raises (and records nothing) if
        they could not be stored."""
        if not entries:
            return
        named, revision = await self._writes.write(self._entries, entries)
        self._entries.update(named)
        self._revision = max(self._revision, revision)

    # ------------------------------------------------------------------ administration
    async def execute(self, user: str, commands: Sequence[Command]) -> list[Event]:
        """Run an administrative batch as ``user``; durable before it returns.

        The batch (with the obligation responses it triggers) is first run and undone, which
        checks it and yields its journal entries; the entries are made durable; then they are
        replayed, so decisions never see a change the store does not hold.
        """
        async with self._writes.held(), self._lock:
            pap = self._state.pap
            events = self._writes.dry_run(self._state.graph, lambda: pap.execute(user, commands))
            entries = pap.take_journal()
            await self._write(entries)
            try:
                self._writes.replay(self._state, entries)
            except GossamerError:  # cannot happen with a deterministic replay; be safe
                pap.take_journal()
                old = self._state
                self._state = await asyncio.to_thread(
                    build_state, list(self._policies.values()), self._ordered()
                )
                old.retire()
                raise
            pap.take_journal()
            return events

    async def fire(self, events: Sequence[Event]) -> list[Firing]:
        """Run the obligations ``events`` match: events a policy enforcement point saw (a
        decision point's allowed requests). Their responses are checked, made durable and
        replayed as :meth:`execute` does a batch's; a failing response is recorded in the
        returned firing and changes nothing."""
        if not events or not len(self._state.pap.obligations):
            return []
        async with self._writes.held(), self._lock:
            pap = self._state.pap
            fired = self._writes.dry_run(self._state.graph, lambda: pap.fire(list(events)))
            entries = pap.take_journal()
            if entries:
                await self._write(entries)
                self._writes.replay(self._state, entries)
                pap.take_journal()
            return fired

    async def check_policies(self, policies: Sequence[AccessPolicy]) -> None:
        """Raise ``GossamerError`` if exactly ``policies`` (with the journal) would not
        make a valid graph; changes nothing. The control plane asks before it stores.

        When the change can be made in place (``authz.policy_diff``), it is tried on the
        graph and undone (milliseconds, not a second graph built); when that fails, or
        cannot be planned, a graph is built off to the side to say why."""
        async with self._lock:
            if self._diffable and await self._writes.fits(self._state, policies, self._entries):
                return  # (when it does not fit, the build below says why, naming the resource)
        await asyncio.to_thread(build_state, policies, self._ordered())

    # ------------------------------------------------------------------ in place
    @property
    def quiet(self) -> bool:
        """Whether the graph changes being made now need no publish round of their own: a
        trial run being undone, or an AccessPolicy apply made in place (``EngineWrites``)."""
        return self._writes.quiet

    @property
    def trial(self) -> bool:
        """Whether the graph changes being made now are a trial run that is undone: unlike
        :attr:`quiet`, not an AccessPolicy made in place (``EngineWrites``)."""
        return self._writes.trial

    @property
    def _diffable(self) -> bool:
        """Whether an AccessPolicy change may be made in place: not after journal entries
        changed by other hands or a failed rebuild."""
        return not (self._journal_changed or self.load_error)

    # ------------------------------------------------------------------ following the store
    def changed(self, changes: Mapping[ResourceKey, Resource | None], revision: int) -> None:
        """Told by the control plane of stored changes to AccessPolicy and AccessCommand
        resources (each key with its resource now, None if deleted), in revision order.

        The engine's own journal entries come back here too and change nothing; anything
        else marks the graph stale, and :meth:`run` rebuilds it.
        """
        stale = False
        for key, resource in changes.items():
            if key.kind == "AccessPolicy":
                if resource is None:
                    stale |= self._policies.pop(key, None) is not None
                elif isinstance(resource, AccessPolicy) and self._policies.get(key) != resource:
                    self._policies[key] = resource
                    stale = True
            elif key.kind == "AccessCommand" and key.namespace == JOURNAL_NAMESPACE:
                if resource is None:
                    gone = self._entries.pop(key.name, None) is not None
                    stale |= gone
                    self._journal_changed |= gone
                elif isinstance(resource, AccessCommand):
                    entry = from_command(resource)
                    if self._writes.writing.get(key.name) == entry:
                        self._entries[key.name] = entry  # ours, being made durable
                    elif self._entries.get(key.name) != entry:
                        self._entries[key.name] = entry
                        stale = self._journal_changed = True
        self._revision = max(self._revision, revision)
        if stale:
            self._stale = True
            self._wake.set()

    @contextlib.asynccontextmanager
    async def frozen(self) -> AsyncIterator[Graph]:
        """The current graph, unchanged while inside: administrative batches and rebuilds
        wait (they hold the same lock). For a reader in a worker thread, e.g. enforcement
        compiling access lists; a change made in place without this lock would race it.
        ``apply --wait`` enters it holding the plane's apply lock: the engine never waits
        for that lock while holding its own (``engine_writes.HeldJournal``)."""
        async with self._lock:
            yield self._state.graph

    @property
    def rebuild_pending(self) -> bool:
        """Whether policies or journal entries changed by other hands wait for a rebuild."""
        return self._stale

    async def rebuild(self) -> None:
        """Rebuild the graph from the policies and journal if they changed by other hands.
        A set that does not make a valid graph leaves the previous graph in force and sets
        :attr:`load_error`."""
        async with self._lock:
            if not self._stale:
                return
            self._stale = False
            policies, entries = list(self._policies.values()), self._ordered()
            if self._diffable and await self._writes.rebuild_in_place(
                self._state, policies, self._entries
            ):
                self._journal_changed = False
                self.rebuilds += 1
                self.rebuilt_in_place += 1
                return
            self._journal_changed = False
            try:
                state = await asyncio.to_thread(build_state, policies, entries)
                old, self._state = self._state, state
                old.retire()
                self.load_error = None
            except (GossamerError, ValueError) as e:  # incl. pydantic errors
                self.load_error = str(e)
                log.warning("the access policies no longer make a valid graph: %s", e)
            self.rebuilds += 1

    async def run(self) -> None:
        """Rebuild whenever :meth:`changed` marks the graph stale, until cancelled. Run it
        in the caller's TaskGroup."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.rebuild()

    # ------------------------------------------------------------------ queries
    @property
    def graph(self) -> Graph:
        return self._state.graph

    @property
    def decider(self) -> Decider:
        return self._state.decider

    @property
    def pap(self) -> PAP:
        return self._state.pap

    def check(self, user: str, target: str, right: str, process: str | None = None) -> bool:
        g = self._state.graph
        return self._state.decider.check(g.id(user, "user"), g.id(target, "target"), right, process)

    def privileges(self, user: str, target: str, process: str | None = None) -> list[str]:
        g = self._state.graph
        bits = self._state.decider.privileges(g.id(user, "user"), g.id(target, "target"), process)
        return g.rights.names(bits)

    def explain(self, user: str, target: str, process: str | None = None) -> Explanation:
        return explain(self._state.graph, user, target, process)

    def access(self, user: str, process: str | None = None) -> dict[str, list[str]]:
        return access(self._state.decider, user, process)

    def statistics(self) -> AuthzEngineStatistics:
        decider = self._state.decider.statistics()
        return AuthzEngineStatistics(
            nodes=len(self._state.graph),
            user_views=decider.user_views,
            target_views=decider.target_views,
            decisions=decider.decisions,
            obligations=len(self._state.pap.obligations),
            skipped_journal_entries=tuple(self._state.skipped),
            load_error=self.load_error,
            revision=self._revision,
        )
