"""How the authz engine changes its graph, short of building a new one.

An administrative batch (or the obligation responses events trigger) is checked by a
**trial run**, undone before it ends, which yields its journal entries; they are made
**durable** through the :class:`CommandJournal` (the journal's lock taken before the
engine's: :class:`HeldJournal`), then **replayed** as the system. An AccessPolicy set is
validated by a trial run too, and an AccessPolicy change is made **in place**
(``authz.policy_diff``: the difference of the merged policies as one graph transaction, so
caches and compiled access lists are redone only where it reached) when that makes the
graph a rebuild would. Every change is one graph transaction (``Graph.transaction``).

Readers of the graph's changes ask :attr:`EngineWrites.quiet` and
:attr:`EngineWrites.trial` (through the engine) what the change being made now is.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from logging import Logger
from typing import Protocol, TypeVar, runtime_checkable

from gossamer.authz.command_journal import CommandJournal, entry_name, entry_seq, to_command
from gossamer.authz.engine_state import EngineState
from gossamer.authz.graph import Graph
from gossamer.authz.pap import JournalEntry
from gossamer.authz.policy import merge
from gossamer.authz.policy_diff import PolicyDiff, plan
from gossamer.authz.policy_layers import LayerNames
from gossamer.authz.policy_remerge import remerge
from gossamer.errors import GossamerError
from gossamer.model.access_policy import AccessPolicy

T = TypeVar("T")


@runtime_checkable
class HeldJournal(Protocol):
    """A journal whose writes take a lock of their own (the control plane's apply lock):
    the engine takes it with :meth:`held` *before* its own lock and appends inside, so the
    two are always taken in one order. ``apply --wait`` holds the apply lock while its
    publish freezes the graph (``Enforcement.state``); a batch holding the engine's lock
    while its journal write waited for the apply lock deadlocked both."""

    def held(self) -> AbstractAsyncContextManager[None]: ...


class _DryRun(Exception):
    """Raised to undo a trial run."""


class EngineWrites:
    """The engine's trial runs, journal writes, replays and in-place AccessPolicy changes,
    and whether one is being made now. Call every method but :meth:`held` holding the
    engine's lock; ``state`` is the engine's current state."""

    def __init__(self, journal: CommandJournal, log: Logger) -> None:
        self._journal = journal
        #: where a change in place that failed is told (the engine's log)
        self._log = log
        #: the entries of the batch being made durable (told back to the engine: not a
        #: rebuild)
        self.writing: dict[str, JournalEntry] = {}
        self._quiet = False
        self._trial = False
        #: what the journal entries name (what a policy change made in place must not)
        self._layer_names = LayerNames()

    # -- the journal ---------------------------------------------------------------------------

    def held(self) -> AbstractAsyncContextManager[object]:
        """Taken before the engine's lock by every write (see :class:`HeldJournal`)."""
        if isinstance(self._journal, HeldJournal):
            return self._journal.held()
        return contextlib.nullcontext()

    async def write(
        self, after: Iterable[str], entries: Sequence[JournalEntry]
    ) -> tuple[dict[str, JournalEntry], int]:
        """Make ``entries`` (not empty) durable through the journal, numbered after the
        entries named ``after``; return them by name, and the store revision. Raises (and
        records nothing) if they could not be stored."""
        first = max((entry_seq(name) for name in after), default=0) + 1
        named = {entry_name(first + i): e for i, e in enumerate(entries)}
        self.writing = named
        try:
            revision = await self._journal.append([to_command(n, e) for n, e in named.items()])
        finally:
            self.writing = {}
        return named, revision

    # -- trial runs and replays ----------------------------------------------------------------

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

    def dry_run(self, graph: Graph, run: Callable[[], T]) -> T:
        """Call ``run`` on ``graph`` as a trial run and undo what it changed; return what it
        returned. An error it raises is undone and propagates."""
        try:
            with self._trying(), graph.transaction():
                result = run()
                raise _DryRun
        except _DryRun:
            pass
        return result

    def replay(self, state: EngineState, entries: Sequence[JournalEntry]) -> None:
        """Make ``entries`` (durable now) in ``state``'s graph as the system, as one
        transaction: all of them, or none and the error propagates."""
        with state.graph.transaction():
            for entry in entries:
                state.pap.execute(None, entry.commands, cause=entry.cause, fire=False)

    # -- AccessPolicy changes in place ---------------------------------------------------------

    async def _plan(
        self,
        state: EngineState,
        policies: Sequence[AccessPolicy],
        entries: Mapping[str, JournalEntry],
    ) -> PolicyDiff | None:
        """The difference taking ``state``'s graph (built with the journal ``entries``) to
        ``policies`` in place, or None if the graph must be rebuilt."""
        if state.merged is None or state.skipped:
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
        layers = self._layer_names.layers(entries)
        planned = plan(state.merged, merged, layers, len(state.graph), touched)
        if planned is not None:
            planned.merged = merged
        return planned

    async def fits(
        self,
        state: EngineState,
        policies: Sequence[AccessPolicy],
        entries: Mapping[str, JournalEntry],
    ) -> bool:
        """Whether ``policies`` can be made in ``state``'s graph in place: planned, tried,
        then undone. False when it cannot be planned or does not apply."""
        planned = await self._plan(state, policies, entries)
        if planned is None:
            return False
        try:
            self.dry_run(state.graph, lambda: planned.apply(state.graph, state.pap.obligations))
        except (GossamerError, ValueError):
            return False
        return True

    async def rebuild_in_place(
        self,
        state: EngineState,
        policies: Sequence[AccessPolicy],
        entries: Mapping[str, JournalEntry],
    ) -> bool:
        """Make the change to ``policies`` in ``state``'s graph as one transaction, quietly
        (its store write asked for the publish round); False (nothing changed) if the graph
        must be rebuilt instead."""
        planned = await self._plan(state, policies, entries)
        if planned is None:
            return False
        try:
            with self._quietly(), state.graph.transaction():
                planned.apply(state.graph, state.pap.obligations)
        except (GossamerError, ValueError) as e:
            self._log.info("an AccessPolicy change made in place failed (%s): rebuilding", e)
            return False
        state.merged, state.sources = planned.merged, tuple(policies)
        return True
