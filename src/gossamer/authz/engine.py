"""The NGAC engine persisted in the control plane's store.

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

Writes hold a lock; a batch is checked by running it and undoing it, its journal entries are
made durable, then replayed: decisions never see a change the store does not hold.
A rebuild (files changed) builds a new graph off to the side (in a thread) and swaps it in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from gossamer.authz.decider import Decider
from gossamer.authz.explain import Explanation, access, explain
from gossamer.authz.graph import Graph
from gossamer.authz.obligations import Event
from gossamer.authz.pap import PAP, JournalEntry
from gossamer.authz.policy import apply as apply_merged
from gossamer.authz.policy import merge
from gossamer.errors import ConflictError, GossamerError
from gossamer.model.access_commands import Command
from gossamer.model.access_policy import AccessCommand, AccessPolicy
from gossamer.store.base import Store
from gossamer.types import API_VERSION, Manifest

JOURNAL_NAMESPACE = "gossamer-system"


def _journal_manifest(seq: int, entry: JournalEntry) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "AccessCommand",
        "metadata": {"name": f"c-{seq:010d}", "namespace": JOURNAL_NAMESPACE},
        "spec": entry.to_data(),
    }


class _DryRun(Exception):
    """Raised to undo the trial run of a batch."""


@dataclass
class EngineState:
    graph: Graph
    decider: Decider
    pap: PAP
    skipped: list[str] = field(default_factory=list)


def build_state(policies: Sequence[AccessPolicy], journal: Sequence[JournalEntry]) -> EngineState:
    merged = merge(policies)
    graph = Graph(merged.rights)
    decider = Decider(graph)
    pap = PAP(graph, decider)
    state = EngineState(graph, decider, pap)
    boot = [e for e in journal if e.cause == "bootstrap"]
    rest = [e for e in journal if e.cause != "bootstrap"]
    for entry in boot:
        pap.execute(None, entry.commands, cause=entry.cause, fire=False)
    apply_merged(graph, merged)
    with graph.transaction():
        for o in merged.obligations:
            pap.obligations.add(o)
    for i, entry in enumerate(rest):
        try:
            pap.execute(None, entry.commands, cause=entry.cause, fire=False)
        except GossamerError as e:
            state.skipped.append(
                f"journal entry {i + len(boot) + 1} ({entry.cause}) no longer applies: {e}"
            )
    pap.take_journal()
    return state


class AuthzEngine:
    """Graph, decisions and administration, kept in a :class:`Store`."""

    def __init__(self, store: Store, state: EngineState, next_seq: int, revision: int) -> None:
        self._store = store
        #: the store revision the graph reflects (where :meth:`run` starts watching)
        self._revision = revision
        #: revisions this engine wrote (its watch skips them)
        self._own: set[int] = set()
        #: why the last rebuild from the store failed (the previous graph stays in force)
        self.load_error: str | None = None
        self._state = state
        self._next_seq = next_seq
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, store: Store, admin: str = "admin") -> AuthzEngine:
        """Load the policy from ``store``; on first start create the bootstrap admin."""
        revision = await store.revision()
        policies, journal, next_seq = await cls._read(store)
        error = None
        try:
            state = await asyncio.to_thread(build_state, policies, journal)
        except GossamerError as e:  # deny by default until the stored policies are fixed
            boot = [entry for entry in journal if entry.cause == "bootstrap"]
            state = await asyncio.to_thread(build_state, [], boot)
            error = (
                f"the stored AccessPolicy resources do not make a valid graph; nothing "
                f"is granted until they are fixed: {e}"
            )
        engine = cls(store, state, next_seq, revision)
        engine.load_error = error
        if not journal:
            async with engine._lock:
                with state.graph.transaction():
                    state.pap.bootstrap(admin)
                    await engine._persist()
        return engine

    @staticmethod
    async def _read(store: Store) -> tuple[list[AccessPolicy], list[JournalEntry], int]:
        resources, _ = await store.list("AccessPolicy")
        policies = [AccessPolicy.model_validate(r.manifest) for r in resources]
        entries, _ = await store.list("AccessCommand", JOURNAL_NAMESPACE)
        entries.sort(key=lambda r: r.key.name)
        journal = [
            JournalEntry.from_data(AccessCommand.model_validate(r.manifest).spec.model_dump())
            for r in entries
        ]
        last = int(entries[-1].key.name[2:]) if entries else 0
        return policies, journal, last + 1

    async def _persist(self) -> None:
        await self._write(self._state.pap.take_journal())

    async def _write(self, entries: Sequence[JournalEntry]) -> None:
        if not entries:
            return
        puts = [_journal_manifest(self._next_seq + i, e) for i, e in enumerate(entries)]
        self._own.add(await self._store.apply(puts=puts))
        self._next_seq += len(entries)

    # ------------------------------------------------------------------ administration
    async def execute(self, user: str, commands: Sequence[Command]) -> list[Event]:
        """Run an administrative batch as ``user``; durable before it returns.

        The batch (with the obligation responses it triggers) is first run and undone, which
        checks it and yields its journal entries; the entries are made durable; then they are
        replayed, so decisions never see a change the store does not hold.
        """
        async with self._lock:
            pap = self._state.pap
            try:
                with self._state.graph.transaction():
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
                self._state = await asyncio.to_thread(
                    build_state, *(await self._read(self._store))[:2]
                )
                raise
            pap.take_journal()
            return events

    async def check_policies(self, policies: Sequence[AccessPolicy]) -> None:
        """Raise ``GossamerError`` if exactly ``policies`` (with the stored journal) would not
        make a valid graph; changes nothing. The control plane asks before it stores."""
        _, journal, _ = await self._read(self._store)
        await asyncio.to_thread(build_state, policies, journal)

    async def apply_policies(self, policies: Sequence[AccessPolicy]) -> None:
        """Store ``policies`` (new or changed) and rebuild the graph from the store."""
        async with self._lock:
            current, journal, _ = await self._read(self._store)
            by_key = {p.key: p for p in current}
            by_key.update({p.key: p for p in policies})
            # build first: a policy set that does not make a valid graph is not stored
            state = await asyncio.to_thread(build_state, list(by_key.values()), journal)
            self._own.add(await self._store.apply(puts=[p.to_manifest() for p in policies]))
            self._state = state

    async def delete_policies(self, names: Sequence[tuple[str, str]]) -> None:
        """Delete AccessPolicy resources by (namespace, name) and rebuild."""
        async with self._lock:
            current, journal, _ = await self._read(self._store)
            gone = set(names)
            keep = [p for p in current if p.ref not in gone]
            state = await asyncio.to_thread(build_state, keep, journal)
            self._own.add(
                await self._store.apply(deletes=[p.key for p in current if p.ref in gone])
            )
            self._state = state

    async def reload(self) -> None:
        """Rebuild from the store (after someone else changed it)."""
        async with self._lock:
            revision = await self._store.revision()
            policies, journal, next_seq = await self._read(self._store)
            self._state = await asyncio.to_thread(build_state, policies, journal)
            self._next_seq = next_seq
            self._revision = revision
            self.load_error = None

    async def run(self) -> None:
        """Follow the store until cancelled: rebuild when AccessPolicy or AccessCommand
        resources change other than through this engine (e.g. ``gossamer apply``). A set of
        policies that does not make a valid graph leaves the previous graph in force and
        sets :attr:`load_error`. Run it in the caller's TaskGroup."""
        while True:
            try:
                async for batch in self._store.watch(self._revision):
                    revision = max(c.revision for c in batch)
                    ours = revision in self._own
                    self._own.discard(revision)
                    relevant = any(c.key.kind in ("AccessPolicy", "AccessCommand") for c in batch)
                    if relevant and not ours:
                        try:
                            await self.reload()
                        except (GossamerError, ValueError) as e:  # incl. pydantic errors
                            self.load_error = str(e)
                    self._revision = max(self._revision, revision)
            except ConflictError:  # fell behind the store's history: re-list, watch again
                await self.reload()

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

    def statistics(self) -> dict[str, object]:
        return {
            "nodes": len(self._state.graph),
            **self._state.decider.statistics(),
            "obligations": len(self._state.pap.obligations),
            "skipped_journal_entries": list(self._state.skipped),
            "load_error": self.load_error,
            "revision": self._revision,
        }
