"""A gateway's route table patched in place (``translate.gateway_tables``) is byte for
byte the table a fresh translator builds, whatever sequence of Route changes led to it;
and a change of one Route's rules is patched, not built afresh."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gossamer.model import ModelSnapshot, Resource, parse_manifest
from gossamer.translate import gateway_tables
from gossamer.translate.proxy import Translator
from gossamer.types import API_VERSION, ProxyIdentity, ResourceKey

SERVICES = ("a", "b", "c")
ROUTES = ("r0", "r1", "r2", "r3")
GATEWAYS = (("edge", ["shop.example", "*"]), ("side", ["*"]))


def manifest(kind: str, name: str, spec: dict[str, Any]) -> Resource:
    return parse_manifest(
        {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


def service(name: str, port: int = 8080) -> Resource:
    return manifest("Service", name, {"ports": [{"name": "http", "port": port}]})


def route(name: str, to: str, hosts: list[str], timeout: int = 1, both: bool = False) -> Resource:
    rules = [{"destinations": [{"service": to}], "timeout": f"{timeout}s"}]
    spec = {"gateways": ["edge", "side"] if both else ["edge"], "hosts": hosts, "rules": rules}
    return manifest("Route", name, spec)


def base() -> ModelSnapshot:
    gateways = [
        manifest("Gateway", g, {"address": "127.0.0.1", "port": 18000 + i, "hosts": hosts})
        for i, (g, hosts) in enumerate(GATEWAYS)
    ]
    routes = [
        route("r0", "a", ["*"]),
        route("r1", "b", ["b.example"], both=True),
        route("r2", "c", ["c.example", "shop.example"]),
    ]
    return ModelSnapshot().with_changes([*map(service, SERVICES), *gateways, *routes])


HOSTS = (["*"], ["b.example"], ["c.example", "shop.example"], ["shop.example"])
ops = st.one_of(
    # a rule's change: the same hosts and gateways (patched), or others (built afresh)
    st.tuples(
        st.just("rule"),
        st.sampled_from(ROUTES),
        st.sampled_from(SERVICES),
        st.integers(1, 3),
        st.sampled_from(range(len(HOSTS))),
        st.booleans(),
    ),
    st.tuples(st.just("delete"), st.sampled_from(ROUTES)),
    st.tuples(st.just("service"), st.sampled_from(SERVICES), st.integers(8080, 8082)),
)


def change(snap: ModelSnapshot, op: tuple[Any, ...]) -> ModelSnapshot:
    match op:
        case ("rule", name, to, timeout, hosts, both):
            return snap.with_changes([route(name, to, HOSTS[hosts], timeout, both)])
        case ("delete", name):
            return snap.with_changes((), [ResourceKey("Route", "default", name)])
        case ("service", name, port):
            return snap.with_changes([service(name, port)])
    raise AssertionError(op)


def tables(t: Translator, snap: ModelSnapshot) -> dict[str, bytes]:
    out = {}
    for g, _ in GATEWAYS:
        res = t.proxy(snap, ProxyIdentity("gateway", "default", g))
        for name, table in res.routes.items():
            out[name] = table.SerializeToString(deterministic=True)
        out[f"{g} clusters"] = b",".join(sorted(n.encode() for n in res.clusters))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(ops, min_size=1, max_size=8))
def test_patched_tables_equal_fresh_ones(steps: list[tuple[Any, ...]]) -> None:
    warm = Translator()
    snap = base()
    tables(warm, snap)
    for op in steps:
        snap = change(snap, op)
        assert tables(warm, snap) == tables(Translator(), snap), op


def test_a_rule_change_is_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    warm = Translator()
    snap = base()
    tables(warm, snap)
    built: list[object] = []
    real = gateway_tables.VhostTable.__init__

    def counted(self: gateway_tables.VhostTable, *args: Any) -> None:
        built.append(args)
        real(self, *args)

    monkeypatch.setattr(gateway_tables.VhostTable, "__init__", counted)
    for hosts, afresh in ((2, 0), (3, 1)):  # the same hosts and gateways; other hosts
        snap = change(snap, ("rule", "r2", "a", 3, hosts, False))
        fresh = tables(Translator(), snap)
        built.clear()
        assert tables(warm, snap) == fresh
        assert len(built) == afresh, hosts
