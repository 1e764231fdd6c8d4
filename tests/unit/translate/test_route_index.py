"""The Routes' subsets and rate limits (``translate.route_index``): after any sequence of
Route changes, what a walk over every Route finds; and a change reads only what changed."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.model import ModelSnapshot, Resource, parse_manifest
from gossamer.model.route import Route
from gossamer.translate import route_index
from gossamer.translate.names import subset_of
from gossamer.translate.route_index import RouteIndex
from gossamer.types import API_VERSION, ResourceKey

SERVICES = ("a", "b")
ROUTES = ("r0", "r1", "r2")


def manifest(kind: str, name: str, spec: dict[str, Any]) -> Resource:
    return parse_manifest(
        {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def route(name: str, to: str, version: str | None, limited: bool) -> Resource:
    destination: dict[str, Any] = {"service": to}
    if version is not None:
        destination["subset"] = {"version": version}
    rule: dict[str, Any] = {"destinations": [destination]}
    if limited:
        rule["rateLimit"] = {"requests": 10, "per": "1s"}
    return manifest("Route", name, {"service": to, "rules": [rule]})


def base() -> ModelSnapshot:
    services = [manifest("Service", s, {"ports": [{"name": "http", "port": 80}]}) for s in SERVICES]
    return ModelSnapshot().with_changes(services)


def walked(snap: ModelSnapshot) -> tuple[dict[Any, tuple[Any, ...]], tuple[Route, ...]]:
    found: dict[Any, set[Any]] = {}
    for (ns, _), r in snap.routes.items():
        for rule in r.spec.rules:
            for d in rule.targets():
                if d.subset:
                    found.setdefault((d.namespace or ns, d.service), set()).add(subset_of(d.subset))
    limited = tuple(r for r in snap.routes.values() if any(rule.rateLimit for rule in r.spec.rules))
    return {ref: tuple(sorted(s)) for ref, s in found.items()}, limited


ops = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(ROUTES),
        st.sampled_from(SERVICES),
        st.sampled_from([None, "v1", "v2"]),
        st.booleans(),
    ),
    st.tuples(st.just("delete"), st.sampled_from(ROUTES)),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(ops, min_size=1, max_size=10))
def test_the_index_is_what_a_walk_over_every_route_finds(steps: list[tuple[Any, ...]]) -> None:
    index, snap = RouteIndex(), base()
    for step in steps:
        if step[0] == "put":
            snap = snap.with_changes([route(*step[1:])])
        elif ("default", step[1]) in snap.routes:
            snap = snap.with_changes((), [ResourceKey("Route", "default", step[1])])
        subsets, limited = walked(snap)
        assert {ref: index.subsets(snap, ref) for ref in subsets} == subsets
        assert all(
            index.subsets(snap, ("default", s)) == ()
            for s in SERVICES
            if ("default", s) not in subsets
        )
        assert index.limited(snap) == limited


def test_a_route_change_reads_only_that_route(monkeypatch: pytest.MonkeyPatch) -> None:
    snap = base().with_changes([route(f"r{i}", "a", "v1", i % 2 == 0) for i in range(50)])
    index = RouteIndex()
    assert len(index.limited(snap)) == 25
    read: list[str] = []
    real = route_index._facts

    def counted(namespace: str, r: Route) -> Any:
        read.append(r.metadata.name)
        return real(namespace, r)

    monkeypatch.setattr(route_index, "_facts", counted)
    snap = snap.with_changes([route("r7", "b", "v2", True)])
    assert index.subsets(snap, ("default", "b")) == (subset_of({"version": "v2"}),)
    assert len(index.limited(snap)) == 26 and read == ["r7"]
    index.subsets(snap, ("default", "a"))  # (the same generation: nothing read)
    assert read == ["r7"]
