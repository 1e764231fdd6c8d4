"""A graph the engine replaced (an AccessPolicy change it could not make in place) is freed
when the last reference to it goes, not left to a collection of the oldest generation:
at 1000 services x 10k identities those walked millions of objects and stalled the
control plane's event loop 34-317 ms each (docs/benchmarks.md)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from gossamer.authz.acl import AccessLists
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.service_access import ServiceAccessCompiler
from gossamer.model import parse_manifest
from gossamer.model.access_policy import AccessCommand, AccessPolicy

pytestmark = pytest.mark.asyncio


class ListJournal:
    def __init__(self) -> None:
        self.entries: list[AccessCommand] = []

    async def append(self, entries: Sequence[AccessCommand]) -> int:
        self.entries.extend(entries)
        return len(self.entries)


def policy(kind: str) -> AccessPolicy:
    """``x`` as a user attribute or an object attribute: another kind is always rebuilt."""
    section = "userAttributes" if kind == "UA" else "objectAttributes"
    spec: dict[str, Any] = {
        "policyClasses": ["pc"],
        "userAttributes": {"team": ["pc"]},
        "objectAttributes": {"svc:default/a": ["pc"]},
        "users": {"spiffe://m/ns/default/sa/web": ["team"]},
        "associations": [{"userAttribute": "team", "target": "svc:default/a", "rights": ["GET"]}],
    }
    spec.setdefault(section, {})["x"] = ["pc"]
    manifest = {
        "apiVersion": "gossamer.dev/v1",
        "kind": "AccessPolicy",
        "metadata": {"name": "p"},
        "spec": spec,
    }
    parsed = parse_manifest(manifest)
    assert isinstance(parsed, AccessPolicy)
    return parsed


@contextmanager
def no_collections() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def test_a_replaced_graph_is_freed_without_a_collection() -> None:
    engine = await AuthzEngine.open(ListJournal(), [], 0)
    engine.changed({policy("UA").key: policy("UA")}, 1)
    await engine.rebuild()
    # what listens to a graph: the decider (the engine's), access lists and a compiler
    old = engine.graph
    lists = AccessLists(engine.decider)
    compiler = ServiceAccessCompiler(engine.decider)
    assert engine.check("spiffe://m/ns/default/sa/web", "svc:default/a", "GET")
    compiler.compile(("default", "a"))
    freed = weakref.ref(old)
    with no_collections():
        engine.changed({policy("OA").key: policy("OA")}, 2)
        await engine.rebuild()
        assert engine.graph is not old and engine.load_error is None
        del old, lists, compiler
        assert freed() is None, "the replaced graph waits for a collection of its cycles"
    assert engine.check("spiffe://m/ns/default/sa/web", "svc:default/a", "GET")
