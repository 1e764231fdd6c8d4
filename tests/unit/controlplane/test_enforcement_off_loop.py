"""Compiling every access list after a rebuilt graph (1000 enforcing services x 10k service
identities: seconds of CPU) happens in a worker thread (``controlplane.enforcement``): the
event loop keeps answering meanwhile, and an administrative batch that arrives mid-compile
waits for it rather than changing the graph under the worker (the lists that come out
afterwards equal a fresh compile of the changed graph)."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from typing import Any

import pytest

from gossamer.authz.decider import Decider
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.service_access import ServiceAccessCompiler
from gossamer.controlplane.enforcement import Enforcement
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.model.access_commands import parse_commands
from gossamer.model.access_policy import AccessCommand, AccessPolicy
from gossamer.server.app import serving_interpreter

pytestmark = [pytest.mark.asyncio, pytest.mark.slow, pytest.mark.timeout(180)]

API = "gossamer.dev/v1"
TD = "bench.local"
SERVICES, IDENTITIES = 1000, 10_000
#: a method per service's own team: (team, method) differs for each of the 1000 services
OWN = ("PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
#: the longest the loop may go without running a ready task during the compile (p99)
MAX_STALL = 0.1


class ListJournal:
    def __init__(self) -> None:
        self.entries: list[AccessCommand] = []

    async def append(self, entries: Sequence[AccessCommand]) -> int:
        self.entries.extend(entries)
        return len(self.entries)


def _policy() -> AccessPolicy:
    """Teams of 50 identities, services in groups of 20, each team GET/POST on 2 groups and
    one method on a few services (a pair of its own for each): ~500 callers per list."""
    teams, groups = IDENTITIES // 50, SERVICES // 20
    spec: dict[str, Any] = {
        "policyClasses": ["mesh"],
        "userAttributes": {f"t{i}": ["mesh"] for i in range(teams)},
        "objectAttributes": {f"g{i}": ["mesh"] for i in range(groups)}
        | {f"svc:default/s{k}": [f"g{k % groups}"] for k in range(SERVICES)},
        "users": {
            f"spiffe://{TD}/ns/default/sa/id{i}": [f"t{i % teams}"] for i in range(IDENTITIES)
        },
        "associations": [
            {
                "userAttribute": f"t{i}",
                "target": f"g{(i * 7 + j) % groups}",
                "rights": ["GET", "POST"],
            }
            for i in range(teams)
            for j in range(2)
        ]
        + [  # and a team of its own per service: no two lists are equal (none shared)
            {
                "userAttribute": f"t{k % teams}",
                "target": f"svc:default/s{k}",
                "rights": [OWN[k // teams]],
            }
            for k in range(SERVICES)
        ]
        + [{"userAttribute": "gossamer:admins", "target": "t3", "rights": ["*"]}],
    }
    manifest = {
        "apiVersion": API,
        "kind": "AccessPolicy",
        "metadata": {"name": "big"},
        "spec": spec,
    }
    policy = parse_manifest(manifest)
    assert isinstance(policy, AccessPolicy)
    return policy


def _model() -> ModelSnapshot:
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": API,
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"trustDomain": TD, "authorization": {"mode": "enforce"}},
        }
    ]
    docs += [
        {
            "apiVersion": API,
            "kind": "Service",
            "metadata": {"name": f"s{k}"},
            "spec": {"ports": [{"name": "http", "port": 9080}]},
        }
        for k in range(SERVICES)
    ]
    return ModelSnapshot().with_changes([parse_manifest(d) for d in docs])


async def _engine() -> AuthzEngine:
    engine = await AuthzEngine.open(ListJournal(), [], 0)
    policy = _policy()
    engine.changed({policy.key: policy}, 1)
    await engine.rebuild()
    assert engine.load_error is None
    return engine


async def _probe(stalls: list[float]) -> None:
    """How late the loop runs a task that asks to run every millisecond."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(0.001)
        stalls.append(loop.time() - start - 0.001)


def _assert_loop_answered(stalls: list[float], what: str) -> None:
    """The loop ran the probe within MAX_STALL in 99 % of its wake-ups: a compile holding the
    loop (or the GIL) stalls every wake-up it spans, and leaves few samples, so its p99 is its
    stall; a single late wake-up is the OS's scheduler on a loaded machine (seen: 191 ms once
    in 879 samples while two cores ran three test workers and benches), not the compile."""
    ordered = sorted(stalls)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    assert p99 < MAX_STALL, (
        f"the event loop stalled {p99 * 1e3:.0f} ms at p99 (max {ordered[-1] * 1e3:.0f} ms) "
        f"{what} ({len(stalls)} probe samples)"
    )


async def test_the_loop_keeps_answering_while_every_list_compiles() -> None:
    engine = await _engine()
    enforcement = Enforcement(lambda: None)
    enforcement.attach(engine)
    model = _model()
    stalls: list[float] = []
    with serving_interpreter():  # as the server runs (1 ms GIL switches, what it loaded frozen)
        probe = asyncio.create_task(_probe(stalls))
        try:
            await asyncio.sleep(0.01)
            start = time.perf_counter()
            state = await enforcement.state(model)
            took = time.perf_counter() - start
            await asyncio.sleep(0.01)  # the probe notes how late its last wake-up came
        finally:
            probe.cancel()
    assert len(state.services) == SERVICES
    assert len(state.of(("default", "s0")).prefixes[-1].grants) >= 200
    assert took > 2 * MAX_STALL, f"the compile took {took:.2f} s: too small to show anything"
    _assert_loop_answered(stalls, f"during a {took:.2f} s compile")


async def test_a_batch_during_a_compile_waits_and_is_compiled_next() -> None:
    engine = await _engine()
    enforcement = Enforcement(lambda: None)
    enforcement.attach(engine)
    model = _model()
    newcomer = f"spiffe://{TD}/ns/default/sa/newcomer"
    compiling = asyncio.create_task(enforcement.state(model))
    await asyncio.sleep(0.05)  # the worker is compiling now
    assert not compiling.done()
    batch = parse_commands([{"op": "create_user", "name": newcomer, "parents": ["t3"]}])
    await engine.execute("admin", batch)
    first = await compiling
    assert all(newcomer not in dict(a.prefixes[-1].grants) for a in first.services.values())
    second = await enforcement.state(model)
    fresh = ServiceAccessCompiler(Decider(engine.graph))
    expected = fresh.compile_all(first.services)
    assert dict(second.services) == expected
    assert any(newcomer in dict(a.prefixes[-1].grants) for a in second.services.values())


async def test_a_cancelled_compile_stops_its_worker_and_the_next_one_is_whole() -> None:
    engine = await _engine()
    enforcement = Enforcement(lambda: None)
    enforcement.attach(engine)
    model = _model()
    compiling = asyncio.create_task(enforcement.state(model))
    await asyncio.sleep(0.05)  # the worker is compiling now
    assert not compiling.done()
    start = time.perf_counter()
    compiling.cancel()
    with pytest.raises(asyncio.CancelledError):
        await compiling
    # the worker was told to stop between two services, and awaited (the graph stays
    # frozen while it reads): an administrative batch gets the lock right after
    assert time.perf_counter() - start < 0.2
    async with asyncio.timeout(0.5), engine.frozen():
        pass
    state = await enforcement.state(model)
    expected = ServiceAccessCompiler(Decider(engine.graph)).compile_all(state.services)
    assert len(state.services) == SERVICES and dict(state.services) == expected


def _edge_policy(on: bool) -> AccessPolicy:
    """A second, small policy holding one edge: ``mover`` in team t4, and in t3 if ``on``."""
    manifest = {
        "apiVersion": API,
        "kind": "AccessPolicy",
        "metadata": {"name": "edge"},
        "spec": {"users": {f"spiffe://{TD}/ns/default/sa/mover": ["t4", *(["t3"] if on else [])]}},
    }
    policy = parse_manifest(manifest)
    assert isinstance(policy, AccessPolicy)
    return policy


#: the longest collection while AccessPolicy applies of one edge are made and compiled
MAX_COLLECTION = 0.05


class _Collections:
    """The CPU time each garbage collection took (``gc.callbacks``; in the collecting
    thread, so the VM's other users' load does not count), while inside."""

    def __init__(self) -> None:
        self.took: list[float] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.thread_time()
        else:
            self.took.append(time.thread_time() - self._start)

    def __enter__(self) -> _Collections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def test_an_access_policy_apply_changes_the_graph_in_place_and_the_loop_keeps_answering() -> (
    None
):
    """An AccessPolicy apply of one edge (what ``gossamer apply`` does) is made in the graph
    in place: the same graph, only the lists the edge reached compiled again, and the lists
    equal a compile from scratch. No collection walks the graph and the lists meanwhile
    (the full collections freeing replaced graphs stalled the loop 34-317 ms): each takes
    < 50 ms, and the loop is never held longer than the other tests here allow (on the
    shared 2-core VM the worst seen idle was ~10 ms; its other users' load adds to it)."""
    engine = await _engine()
    enforcement = Enforcement(lambda: None)
    enforcement.attach(engine)
    model = _model()
    mover = f"spiffe://{TD}/ns/default/sa/mover"
    stalls: list[float] = []
    first = _edge_policy(False)
    engine.changed({first.key: first}, 2)
    with serving_interpreter():
        await enforcement.state(model)  # every list, once
        graph, revision = engine.graph, 3
        probe = asyncio.create_task(_probe(stalls))
        try:
            with _Collections() as collections:
                for i in range(8):
                    on = i % 2 == 0
                    policy = _edge_policy(on)
                    engine.changed({policy.key: policy}, revision)
                    revision += 1
                    recompiled = enforcement.recompiled
                    state = await enforcement.state(model)
                    assert engine.graph is graph, "the graph was rebuilt, not changed in place"
                    # t3 holds GET/POST on two groups of 20 and a method on 5 services
                    assert 0 < enforcement.recompiled - recompiled <= 45
                    # s3 grants PUT to t3 (its own team): the mover holds it while in t3
                    assert (mover in dict(state.of(("default", "s3")).prefixes[-1].grants)) == on
                await asyncio.sleep(0.01)
        finally:
            probe.cancel()
    fresh = ServiceAccessCompiler(Decider(engine.graph)).compile_all(state.services)
    assert dict(state.services) == fresh
    assert max(collections.took, default=0) < MAX_COLLECTION, (
        f"collections took {sorted(collections.took)[-3:]} s while 8 AccessPolicy applies "
        "were made and compiled"
    )
    _assert_loop_answered(stalls, "while 8 AccessPolicy applies were compiled")
