"""The NGAC graph's access lists kept compiled for the services that enforce it, and the
publish rounds they cause (docs/ngac.md, "Enforcement in Envoy").

Each publish round asks :meth:`Enforcement.state` for the lists of every service whose
authorization mode is not ``off``. It rebuilds the engine's graph first if stored policies
changed (so ``apply --wait`` of an AccessPolicy waits for the graph it asked for), then
compiles, in a worker thread on a frozen graph (the event loop keeps serving): the access
lists are cached per target and invalidated by the graph's change events (``authz.acl``),
so after one edge changed only the lists it reached are redone. A
service whose lists come out equal keeps its :class:`ServiceAccess` object, and
:func:`with_access_change` turns the services whose object changed into the sidecars the
round rebuilds: one edge never republishes the mesh.

A change made inside the engine (an administrative batch, an obligation) marks the plane
dirty through the graph's change events; a policy applied through the store marks it dirty
as every stored change does.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace

from gossamer.authz.changes import GraphChange
from gossamer.authz.decider import Decider
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.graph import Graph
from gossamer.authz.mesh_names import parse_target, prefix_error
from gossamer.authz.service_access import (
    NO_ACCESS,
    AccessState,
    Ref,
    ServiceAccess,
    ServiceAccessCompiler,
)
from gossamer.controlplane.incremental import EndpointChange
from gossamer.errors import FieldError
from gossamer.model import ModelSnapshot
from gossamer.model.access_policy import AccessPolicy
from gossamer.translate import scoping

log = logging.getLogger(__name__)


def enforced_services(model: ModelSnapshot) -> list[Ref]:
    """The services whose sidecars check the graph (mode ``enforce`` or ``audit``)."""
    mesh_mode = model.mesh.spec.authorization.mode
    return [ref for ref, s in model.services.items() if s.authorization_mode(mesh_mode) != "off"]


class Enforcement:
    """Compiled access lists, in step with the engine (once attached) and the model."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        #: called when the graph changed in place (marks the plane dirty)
        self._on_change = on_change
        self._engine: AuthzEngine | None = None
        self._graph: Graph | None = None
        self._compiler: ServiceAccessCompiler | None = None
        self._state = NO_ACCESS
        self._inputs: tuple[object, object] | None = None
        #: one compile at a time (rounds and first snapshots both ask for the lists)
        self._compiling = asyncio.Lock()
        #: services compiled to a new value, over the plane's life (what a change cost)
        self.recompiled = 0
        #: compile rounds (the graph or the enforced services changed)
        self.rounds = 0

    def attach(self, engine: AuthzEngine) -> None:
        """Compile from ``engine``'s graph from now on."""
        self._engine = engine
        self._on_change()

    def graph_changed(self, change: GraphChange) -> None:
        """The graph changed in place (subscribed to the engine's current graph). Not while
        the engine is quiet: a trial run being undone changes nothing in the end, and an
        AccessPolicy made in place was announced by its store write; marking the plane
        again would start the debounce over."""
        if self._engine is None or not self._engine.quiet:
            self._on_change()

    async def state(self, model: ModelSnapshot) -> AccessState:
        """Every enforced service's lists for a round translating ``model``.

        Compiled in a worker thread (after a rebuilt graph every list is new: seconds at
        1000 services x 10k identities), one compile at a time: a caller that waited for
        another's compile gets its lists without compiling again if nothing changed
        meanwhile. The graph stays frozen while the worker reads it
        (:meth:`AuthzEngine.frozen`: an administrative batch waits for the compile, and
        its change is compiled next); the worker decides on its own :class:`Decider`, so
        the loop's decisions and the worker never share a cache."""
        engine = self._engine
        if engine is None:
            return NO_ACCESS
        async with self._compiling:
            if engine.rebuild_pending:
                await engine.rebuild()
            async with engine.frozen() as graph:
                if graph is not self._graph:
                    if self._graph is not None:
                        self._graph.unsubscribe(self)
                    graph.subscribe(self)
                    self._graph, self._compiler = graph, None
                inputs = (model.generation("Service"), model.mesh)
                compiler = self._compiler
                if compiler is not None and not compiler.take_changed() and inputs == self._inputs:
                    return self._state
                self._inputs = None  # until this compile completes
                job = _Compile(graph, compiler, enforced_services(model), self._state.services)
                await _in_worker(job)
                self._compiler, self._inputs = job.compiler, inputs
                self.recompiled += job.recompiled
                self.rounds += 1
                self._state = AccessState(job.out)
                if compiler is None:
                    _freeze_survivors()
                return self._state


def _freeze_survivors() -> None:
    """After a new graph's every list was compiled: move what is alive now out of the
    collector's sight (``gc.freeze``, as ``server.app.serving_interpreter`` does at start).

    The graph, its caches and the lists are millions of objects that live until the next
    rebuild; left to the collector, each collection of the oldest generation walks all of
    them while holding the GIL, which stalled the loop 30-300 ms during the next changes.
    They are freed by reference counting when replaced (``EngineState.retire`` breaks the
    graph's cycles). The young generations are collected first, so little cyclic garbage
    is frozen with them."""
    gc.collect(1)
    gc.freeze()


class _Compile:
    """One compile, run in a worker thread while the graph is frozen: a service whose lists
    come out equal keeps its object from ``old``. ``stop`` ends it between two services."""

    def __init__(
        self,
        graph: Graph,
        compiler: ServiceAccessCompiler | None,
        refs: list[Ref],
        old: Mapping[Ref, ServiceAccess],
    ) -> None:
        self.graph, self.compiler, self.refs, self.old = graph, compiler, refs, old
        self.out: dict[Ref, ServiceAccess] = {}
        self.recompiled = 0
        self.stop = threading.Event()

    def __call__(self) -> None:
        if self.compiler is None:  # a new graph: indexing it is work too
            self.compiler = ServiceAccessCompiler(Decider(self.graph))
            self.compiler.take_changed()
        for ref in self.refs:
            if self.stop.is_set():
                return
            compiled = self.compiler.compile(ref)
            kept = self.old.get(ref)
            if kept == compiled:
                self.out[ref] = kept
            else:
                self.out[ref] = compiled
                self.recompiled += 1


async def _in_worker(job: _Compile) -> None:
    """Run ``job`` in a worker thread. If the caller is cancelled, the worker is told to stop
    and awaited first: it reads the graph, which must stay frozen until it is done."""
    task = asyncio.ensure_future(asyncio.to_thread(job))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        job.stop.set()
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.warning("a cancelled compile failed: %r", task.exception())
        raise


async def check_prefix_names(model: ModelSnapshot) -> list[FieldError]:
    """A path prefix attribute (``svc:<ns>/<svc>:<prefix>``) whose prefix Envoy could not
    match as written (``mesh_names.prefix_error``) is refused when its AccessPolicy is
    applied, rather than silently never deciding anything."""
    errors = []
    for policy in model.resources.values():
        if not isinstance(policy, AccessPolicy):
            continue
        for section in ("objectAttributes", "objects"):
            for name in getattr(policy.spec, section):
                parsed = parse_target(name)
                if parsed is not None and parsed[1] is not None:
                    why = prefix_error(parsed[1])
                    if why is not None:
                        errors.append(FieldError(why, f"spec.{section}.{name}", str(policy.key)))
    return errors


async def check_tcp_enforcement(model: ModelSnapshot) -> list[FieldError]:
    """``enforce`` on a service with a TCP port is refused when applied: its sidecar's RBAC
    is in the HTTP connection manager, so a TCP port would take every caller in silently.
    The field named is the service's own mode, or the Mesh's if the service sets none."""
    mesh_mode = model.mesh.spec.authorization.mode
    errors = []
    for ref, svc in sorted(model.services.items()):
        tcp = [p for p in svc.spec.ports if not p.is_http]
        if not tcp or svc.authorization_mode(mesh_mode) != "enforce":
            continue
        ports = ", ".join(f"{p.name!r} ({p.port})" for p in tcp)
        where = svc if svc.spec.authorization is not None else model.mesh
        message = (
            f"Service {ref[0]}/{ref[1]} would enforce NGAC but its port(s) {ports} are TCP, "
            "where sidecars decide no caller (the RBAC is per HTTP route): set the "
            f"Service's spec.authorization.mode to off (or audit) for {ref[0]}/{ref[1]}, "
            "or give it HTTP ports"
        )
        errors.append(FieldError(message, "spec.authorization.mode", str(where.key)))
    return errors


def with_access_change(
    change: EndpointChange, old: AccessState, new: AccessState, model: ModelSnapshot
) -> EndpointChange:
    """``change`` plus the sidecars of the services whose compiled lists changed (rebuilt in
    full: their inbound route tables change), and of the callers that may now call such a
    service or no longer may (``translate.scoping``: their clusters and routes for it)."""
    if old is new:
        return change
    refs = old.services.keys() | new.services.keys()
    services = {r for r in refs if old.services.get(r) is not new.services.get(r)}
    if not services:
        return change
    workloads = {w.ref for ref in services for w in model.workloads_of(ref)}
    workloads |= _rescoped_callers(model, old, new, services)
    return replace(change, workloads=change.workloads | workloads)


def _rescoped_callers(
    model: ModelSnapshot, old: AccessState, new: AccessState, services: set[Ref]
) -> set[Ref]:
    """The workloads depending on one of ``services`` whose right to call it came or went."""
    flipped: dict[Ref, frozenset[str]] = {}
    for ref in services:
        if scoping.scoped(model, ref):
            ids = scoping.holders(old.of(ref)) ^ scoping.holders(new.of(ref))
            if ids:
                flipped[ref] = ids
    if not flipped:
        return set()
    every = frozenset().union(*flipped.values())
    out = set()
    for w in model.workloads.values():
        caller = scoping.caller_id(model, w)
        if caller not in every:
            continue
        for d in w.spec.dependencies:
            if caller in flipped.get((d.namespace or w.metadata.namespace, d.service), ()):
                out.add(w.ref)
    return out
