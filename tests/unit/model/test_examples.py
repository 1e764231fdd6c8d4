"""Runnable examples are tests: every examples/*.yaml loads and is consistent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gossamer.model import ModelSnapshot, check_references, parse_yaml
from gossamer.store.base import StoredResource

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def load(path: Path) -> ModelSnapshot:
    resources = parse_yaml(path.read_text(encoding="utf-8"), path.name)
    rows = [StoredResource(r.key, r.to_manifest(), i, i) for i, r in enumerate(resources, 1)]
    return ModelSnapshot.from_stored(rows, revision=len(rows))


def test_there_are_examples() -> None:
    assert (EXAMPLES / "shop.yaml").is_file()


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_valid_and_consistent(path: Path) -> None:
    assert [str(e) for e in check_references(load(path))] == []


def test_the_shop() -> None:
    snap = load(EXAMPLES / "shop.yaml")
    assert snap.mesh.spec.trustDomain == "shop.local"
    assert snap.mesh.spec.defaults.requestTimeout == timedelta(seconds=10)
    assert sorted(name for _, name in snap.services) == ["catalog", "ratings", "reviews", "web"]
    assert snap.services[("default", "ratings")].spec.ports[0].protocol == "grpc"

    hosts = {w.spec.address for w in snap.workloads.values()}
    assert hosts == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}
    assert all(w.spec.sidecar for w in snap.workloads.values())
    web = snap.workloads[("default", "web-1")]
    assert [d.service for d in web.spec.dependencies] == ["catalog", "reviews"]
    assert {w.version for w in snap.workloads_of(("default", "reviews"))} == {"v1", "v2"}

    (split,) = snap.routes_for_service(("default", "reviews"))
    dests = split.spec.rules[0].destinations
    assert [(d.subset, d.weight) for d in dests] == [
        ({"version": "v1"}, 80),
        ({"version": "v2"}, 20),
    ]
    (ingress,) = snap.routes_for_gateway(("default", "edge"))
    assert [r.destinations[0].service for r in ingress.spec.rules] == ["catalog", "web"]
    assert len(set(snap.local_addresses.values())) == 4


def test_the_shop_apps_and_sidecars_never_share_a_socket() -> None:
    """All four hosts can run on one machine: no two inbound listeners or apps share a socket."""
    snap = load(EXAMPLES / "shop.yaml")
    sockets: list[tuple[str, int]] = []
    for w in snap.workloads.values():
        for p in w.spec.ports:
            sockets.append((w.spec.address, p.port))
            assert p.appPort is not None
            sockets.append((w.spec.appAddress, p.appPort))
    for g in snap.gateways.values():
        sockets.append((g.spec.address, g.spec.port))
    assert len(sockets) == len(set(sockets))
