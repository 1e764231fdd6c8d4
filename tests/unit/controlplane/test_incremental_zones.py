"""Endpoint-only publishes with zones: a workload changing zone moves between priorities in
every caller's endpoint set, each (cluster, zone) is built once per change, and the result
equals a full rebuild."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from prometheus_client import CollectorRegistry

from gossamer.controlplane import incremental
from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.model import parse_manifest
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import service, workload
from gossamer.translate import shared_pieces
from gossamer.translate.proxy import Translator
from gossamer.types import API_VERSION, ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer

CATALOG = "outbound|default/catalog|http"
WEB_A = ProxyIdentity("sidecar", "default", "web-a")
WEB_B = ProxyIdentity("sidecar", "default", "web-b")
EDGE = ProxyIdentity("gateway", "default", "edge")
WEB_C = ProxyIdentity("sidecar", "default", "web-c")
PROXIES = [WEB_A, WEB_B, EDGE, ProxyIdentity("sidecar", "default", "catalog-2")]


def web(name: str, zone: str, n: int) -> dict[str, Any]:
    return workload(
        name,
        "web",
        f"127.0.0.{n}",
        15000,
        18000,
        zone=zone,
        dependencies=[{"service": "catalog", "localAddress": f"127.0.0.{n}", "localPort": 9001}],
    )


def catalog(i: int, zone: str) -> dict[str, Any]:
    return workload(f"catalog-{i}", "catalog", f"127.0.1.{i}", 15000, 18000, zone=zone)


def base() -> list[dict[str, Any]]:
    return [
        service("web", 8080),
        service("catalog", 9080),
        web("web-a", "zone-a", 2),
        web("web-b", "zone-b", 3),
        catalog(1, "zone-a"),
        catalog(2, "zone-a"),
        catalog(3, "zone-b"),
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {"port": 18080, "zone": "zone-b"},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "Route",
            "metadata": {"name": "edge"},
            "spec": {"gateways": ["edge"], "rules": [{"destinations": [{"service": "catalog"}]}]},
        },
    ]


def priorities(plane: ControlPlane, proxy: ProxyIdentity) -> dict[str, tuple[int, list[str]]]:
    snap = plane.publisher.cache.get(proxy.node_id)
    assert snap is not None
    cla = endpoint_pb2.ClusterLoadAssignment()
    assert snap.of(ResourceType.ENDPOINT)[CATALOG].resource.Unpack(cla)
    return {
        loc.locality.zone: (loc.priority, [e.endpoint.hostname for e in loc.lb_endpoints])
        for loc in cla.endpoints
    }


@contextmanager
def counting_builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str | None]]]:
    """Every endpoint set built meanwhile, as (cluster, caller zone)."""
    built: list[tuple[str, str | None]] = []
    real = shared_pieces.load_assignment

    def counted(name: str, *args: Any, **kwargs: Any) -> endpoint_pb2.ClusterLoadAssignment:
        built.append((name, kwargs.get("caller_zone")))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(shared_pieces, "load_assignment", counted)
    yield built
    monkeypatch.setattr(shared_pieces, "load_assignment", real)


def assert_equals_full_rebuild(plane: ControlPlane) -> None:
    assert plane.model is not None
    fresh, serializer = Translator(), Serializer()
    for p in PROXIES:
        expected = proxy_snapshot(fresh.proxy(plane.model, p), serializer)
        got = plane.publisher.cache.get(p.node_id)
        assert got is not None
        for t in ResourceType:
            want = {n: v.version for n, v in expected.of(t).items()}
            assert {n: v.version for n, v in got.of(t).items()} == want, (p.node_id, t)


async def _published(
    extra: list[dict[str, Any]], proxies: list[ProxyIdentity]
) -> tuple[ControlPlane, SnapshotCache, MemoryStore]:
    """A plane that published ``base()`` and ``extra`` to ``proxies``."""
    store = MemoryStore()
    cache = SnapshotCache()
    plane = ControlPlane(store, cache, XdsMonitor(CollectorRegistry()))
    await plane.load()
    await plane.apply([parse_manifest(m) for m in [*base(), *extra]])
    for p in proxies:
        cache.attach(p)
    await plane.publish()
    return plane, cache, store


def _asking(monkeypatch: pytest.MonkeyPatch, plane: ControlPlane) -> list[Any]:
    """Every endpoint set the translator is asked for from now on, as (key, zone)."""
    asked: list[Any] = []
    translator = plane.publisher.translator
    endpoints = translator.endpoints

    def ask(model: Any, key: Any, *args: Any) -> Any:
        asked.append((key, args[-1]))
        return endpoints(model, key, *args)

    monkeypatch.setattr(translator, "endpoints", ask)
    return asked


async def _scenario(monkeypatch: pytest.MonkeyPatch) -> None:
    plane, cache, store = await _published([], PROXIES)
    assert priorities(plane, WEB_A) == {
        "zone-a": (0, ["catalog-1", "catalog-2"]),
        "zone-b": (1, ["catalog-3"]),
    }
    assert priorities(plane, EDGE) == {
        "zone-a": (1, ["catalog-1", "catalog-2"]),
        "zone-b": (0, ["catalog-3"]),
    }

    # catalog-2 moves to zone-b: an endpoint-only change, one build per (cluster, zone),
    # and the round asks the translator once per (cluster, zone), not once per caller
    asked = _asking(monkeypatch, plane)
    with counting_builds(monkeypatch) as built:
        await plane.apply([parse_manifest(catalog(2, "zone-b"))])
        await plane.publish()
    monkeypatch.undo()
    assert plane.publisher.incremental_rounds == 1
    assert sorted(built, key=str) == [(CATALOG, "zone-a"), (CATALOG, "zone-b")]
    assert sorted(zone for _, zone in asked) == ["zone-a", "zone-b"], asked
    assert priorities(plane, WEB_A) == {
        "zone-a": (0, ["catalog-1"]),
        "zone-b": (1, ["catalog-2", "catalog-3"]),
    }
    for p in (WEB_B, EDGE):  # both in zone-b: one shared resource
        assert priorities(plane, p) == {
            "zone-a": (1, ["catalog-1"]),
            "zone-b": (0, ["catalog-2", "catalog-3"]),
        }
    b, edge = (cache.get(p.node_id) for p in (WEB_B, EDGE))
    assert b is not None and edge is not None
    assert b.of(ResourceType.ENDPOINT)[CATALOG] is edge.of(ResourceType.ENDPOINT)[CATALOG]
    assert_equals_full_rebuild(plane)

    # a caller changing zone is rebuilt in full and prefers its new zone
    await plane.apply([parse_manifest(web("web-a", "zone-b", 2))])
    await plane.publish()
    assert plane.publisher.incremental_rounds == 2
    assert priorities(plane, WEB_A) == priorities(plane, WEB_B)
    assert_equals_full_rebuild(plane)
    await store.close()


def test_a_zone_change_moves_a_workload_between_priorities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asyncio.run(_scenario(monkeypatch))


async def _one_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    plane, cache, store = await _published([web("web-c", "zone-c", 4)], [*PROXIES, WEB_C])

    # catalog-3 joins the others in zone-a: no caller prefers any zone of catalog's now, so
    # the round builds catalog's sets once, for no zone, and looks no caller's zone up
    asked = _asking(monkeypatch, plane)
    looked_up: list[ProxyIdentity] = []
    real_zone = incremental.caller_zone

    def zone_of(model: Any, proxy: ProxyIdentity) -> str | None:
        looked_up.append(proxy)
        return real_zone(model, proxy)

    monkeypatch.setattr(incremental, "caller_zone", zone_of)
    await plane.apply([parse_manifest(catalog(3, "zone-a"))])
    await plane.publish()
    assert plane.publisher.incremental_rounds == 1
    assert [zone for _, zone in asked] == [None], asked
    assert looked_up == []
    everywhere = {"zone-a": (0, ["catalog-1", "catalog-2", "catalog-3"])}
    for p in (WEB_A, WEB_B, EDGE):
        assert priorities(plane, p) == everywhere
    a, b = (cache.get(p.node_id) for p in (WEB_A, WEB_B))
    assert a is not None and b is not None
    assert a.of(ResourceType.ENDPOINT)[CATALOG] is b.of(ResourceType.ENDPOINT)[CATALOG]
    assert_equals_full_rebuild(plane)

    # and back to two zones: each caller's zone counts again, but zone-c's, where catalog
    # has no endpoint (its callers see the sets built for no zone)
    asked.clear()
    await plane.apply([parse_manifest(catalog(3, "zone-b"))])
    await plane.publish()
    assert set(looked_up) >= {WEB_A, WEB_B, EDGE, WEB_C}
    assert sorted({str(zone) for _, zone in asked}) == ["None", "zone-a", "zone-b"], asked
    assert priorities(plane, WEB_B)["zone-b"][0] == 0
    assert priorities(plane, WEB_A)["zone-a"][0] == 0
    assert_equals_full_rebuild(plane)
    await store.close()


def test_a_service_in_one_zone_is_built_once_for_every_caller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asyncio.run(_one_zone(monkeypatch))
