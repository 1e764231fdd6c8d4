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
cycles are broken so it is freed at once. An AccessPolicy change is first tried in place
(``authz.policy_diff``: the difference of the merged policies as one graph transaction,
so caches and compiled access lists are redone only where it reached), when that makes
the graph a rebuild would; validating one before it is stored is tried in place too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gossamer.authz.command_journal import (
    JOURNAL_NAMESPACE,
    CommandJournal,
    entry_name,
    entry_seq,
    from_command,
    to_command,
)
from gossamer.authz.decider import Decider
from gossamer.authz.engine_state import EngineState as EngineState  # re-exported
from gossamer.authz.engine_state import build_state as build_state  # re-exported
from gossamer.authz.explain import Explanation, access, explain
from gossamer.authz.graph import Graph
from gossamer.authz.obligations import Event, Firing
from gossamer.authz.pap import PAP, JournalEntry
from gossamer.authz.policy import merge
from gossamer.authz.policy_diff import PolicyDiff, plan
from gossamer.authz.policy_layers import LayerNames
from gossamer.authz.policy_remerge import remerge
from gossamer.errors import GossamerError
from gossamer.model.access_commands import Command
from gossamer.model.access_policy import AccessCommand, AccessPolicy
from gossamer.model.base import Resource
from gossamer.types import ResourceKey

log = logging.getLogger(__name__)

#: the kinds the engine is built from (and is told of changes to)
AUTHZ_KINDS = frozenset({"AccessPolicy", "AccessCommand"})


@runtime_checkable
class HeldJournal(Protocol):
    """A journal whose writes take a lock of their own (the control plane's apply lock):
    the engine takes it with :meth:`held` *before* its own lock and appends inside, so the
    two are always taken in one order. ``apply --wait`` holds the apply lock while its
    publish freezes the graph (``Enforcement.state``); a batch holding the engine's lock
    while its journal write waited for the apply lock deadlocked both."""

    def held(self) -> AbstractAsyncContextManager[None]: ...


class _DryRun(Exception):
    """Raised to undo the trial run of a batch."""


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
        self._journal = journal
        self._state = state
        #: what the graph is built from: AccessPolicy by key, journal entries by name
        self._policies = dict(policies)
        self._entries = dict(entries)
        #: the entries of the batch being made durable (told back to us: not a rebuild)
        self._writing: dict[str, JournalEntry] = {}
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
        #: what the journal entries name (what a policy change made in place must not)
        self._layer_names = LayerNames()
        self._quiet = False
        self._trial = False
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
            async with engine._writer(), engine._lock:
                with state.graph.transaction():
                    state.pap.bootstrap(admin)
                    await engine._write(state.pap.take_journal())
        return engine

    def _writer(self) -> AbstractAsyncContextManager[object]:
        """Taken before the engine's lock by every write (see :class:`HeldJournal`)."""
        if isinstance(self._journal, HeldJournal):
            return self._journal.held()
        return contextlib.nullcontext()

    def _ordered(self) -> list[JournalEntry]:
        return [self._entries[name] for name in sorted(self._entries)]

    async def _write(self, entries: Sequence[JournalEntry]) -> None:
        """Make ``entries`` durable through the journal; raises (and records nothing) if
        they could not be stored."""
        if not entries:
            return
        first = max((entry_seq(name) for name in self._entries), default=0) + 1
        named = {entry_name(first + i): e for i, e in enumerate(entries)}
        self._writing = named
        try:
            revision = await self._journal.append([to_command(n, e) for n, e in named.items()])
        finally:
            self._writing = {}
        self._entries.update(named)
        self._revision = max(self._revision, revision)

    # ------------------------------------------------------------------ administration
    async def execute(self, user: str, commands: Sequence[Command]) -> list[Event]:
        """Run an administrative batch as ``user``; durable before it returns.

        The batch (with the obligation responses it triggers) is first run and undone, which
        checks it and yields its journal entries; the entries are made durable; then they are
        replayed, so decisions never see a change the store does not hold.
        """
        async with self._writer(), self._lock:
            pap = self._state.pap
            try:
                with self._trying(), self._state.graph.transaction():
                    events = pap.execute(user, commands)
                    raise _DryRun
            except _DryRun:
                pass
            entries = pap.take_journal()
            await self._write(entries)
            try:
                with self._state.graph.transaction():
                    for entry in entries:
                        pap.execute(None, entry.commands, cause=entry.cause, fire=False)
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
        async with self._writer(), self._lock:
            pap = self._state.pap
            fired: list[Firing] = []
            try:
                with self._trying(), self._state.graph.transaction():
                    fired = pap.fire(list(events))
                    raise _DryRun
            except _DryRun:
                pass
            entries = pap.take_journal()
            if entries:
                await self._write(entries)
                with self._state.graph.transaction():
                    for entry in entries:
                        pap.execute(None, entry.commands, cause=entry.cause, fire=False)
                pap.take_journal()
            return fired

    async def check_policies(self, policies: Sequence[AccessPolicy]) -> None:
        """Raise ``GossamerError`` if exactly ``policies`` (with the journal) would not
        make a valid graph; changes nothing. The control plane asks before it stores.

        When the change can be made in place (``authz.policy_diff``), it is tried on the
        graph and undone (milliseconds, not a second graph built); when that fails, or
        cannot be planned, a graph is built off to the side to say why."""
        async with self._lock:
            planned = await self._plan(policies)
            if planned is not None:
                try:
                    with self._trying(), self._state.graph.transaction():
                        planned.apply(self._state.graph, self._state.pap.obligations)
                        raise _DryRun
                except _DryRun:
                    return
                except (GossamerError, ValueError):
                    pass  # the build below says why, naming the resource
        await asyncio.to_thread(build_state, policies, self._ordered())

    # ------------------------------------------------------------------ in place
    @property
    def quiet(self) -> bool:
        """Whether the graph changes being made now need no publish round of their own: a
        trial run being undone (a batch checked, policies validated), or an AccessPolicy
        apply made in place (its store write asked for the round)."""
        return self._quiet

    @property
    def trial(self) -> bool:
        """Whether the graph changes being made now are a trial run that is undone (a batch
        checked, policies validated): the graph ends as it was. Unlike :attr:`quiet`, an
        AccessPolicy made in place is no trial: it changes the graph, and a reader of the
        whole graph (``api.authz_graph``) must see it."""
        return self._trial

    @contextlib.contextmanager
    def _quietly(self) -> Iterator[None]:
        quiet, self._quiet = self._quiet, True
        try:
            yield
        finally:
            self._quiet = quiet

    @contextlib.contextmanager
    def _trying(self) -> Iterator[None]:
        """A trial run, undone before it ends: quiet, and :attr:`trial`."""
        trial, self._trial = self._trial, True
        try:
            with self._quietly():
                yield
        finally:
            self._trial = trial

    async def _plan(self, policies: Sequence[AccessPolicy]) -> PolicyDiff | None:
        """The difference taking the graph to ``policies`` in place, or None if the graph
        must be rebuilt (call holding the lock)."""
        state = self._state
        if state.merged is None or state.skipped or self._journal_changed or self.load_error:
            return None
        remerged = remerge(state.merged, state.sources, policies)
        if remerged is not None:
            merged, touched = remerged
        else:
            touched = None
            try:
                merged = await asyncio.to_thread(merge, policies)
            except (GossamerError, ValueError):
                return None  # the rebuild reports it
        layers = self._layer_names.layers(self._entries)
        planned = plan(state.merged, merged, layers, len(state.graph), touched)
        if planned is not None:
            planned.merged = merged
        return planned

    async def _rebuild_in_place(self, policies: Sequence[AccessPolicy]) -> bool:
        """Make an AccessPolicy change in the graph as one transaction; False (nothing
        changed) if it must be rebuilt instead."""
        planned = await self._plan(policies)
        if planned is None:
            return False
        state = self._state
        try:
            with self._quietly(), state.graph.transaction():
                planned.apply(state.graph, state.pap.obligations)
        except (GossamerError, ValueError) as e:
            log.info("an AccessPolicy change made in place failed (%s): rebuilding", e)
            return False
        state.merged, state.sources = planned.merged, tuple(policies)
        return True

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
                    if self._writing.get(key.name) == entry:
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
        for that lock while holding its own (:class:`HeldJournal`)."""
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
            if await self._rebuild_in_place(policies):
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
