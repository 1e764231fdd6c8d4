"""Runnable examples are tests: examples/mesh.yaml with the workloads every
examples/hosts/*.yaml registers (as its agent would) loads and is consistent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gossamer.agent.config import load_config, to_manifest
from gossamer.model import ModelSnapshot, check_references, parse_manifest, parse_yaml
from gossamer.store.base import StoredResource

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


HOSTS = sorted((EXAMPLES / "hosts").glob("*.yaml"))


def load(path: Path, hosts: list[Path] | None = None) -> ModelSnapshot:
    resources = parse_yaml(path.read_text(encoding="utf-8"), path.name)
    for host in hosts or []:
        config = load_config(host)
        assert config.host is not None and config.address is not None, host
        for w in config.workloads:
            assert w.inboundPort is not None, f"{host}: {w.name} keeps a fixed sidecar port"
            resources.append(
                parse_manifest(
                    to_manifest(
                        w, host=config.host, address=config.address, inbound_port=w.inboundPort
                    )
                )
            )
    rows = [StoredResource(r.key, r.to_manifest(), i, i) for i, r in enumerate(resources, 1)]
    return ModelSnapshot.from_stored(rows, revision=len(rows))


def test_there_are_examples() -> None:
    assert (EXAMPLES / "mesh.yaml").is_file()
    assert [p.name for p in HOSTS] == [f"host-{n}.yaml" for n in (2, 3, 4, 5)]


def test_the_mesh_holds_no_workloads() -> None:
    """Workloads come from the hosts' agents (they own them): a user applying mesh.yaml
    must not take them first, or the agents would be refused (409)."""
    assert load(EXAMPLES / "mesh.yaml").workloads == {}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_is_valid_and_consistent(path: Path) -> None:
    assert [str(e) for e in check_references(load(path, HOSTS))] == []


def test_the_shop() -> None:
    snap = load(EXAMPLES / "mesh.yaml", HOSTS)
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
    snap = load(EXAMPLES / "mesh.yaml", HOSTS)
    sockets: list[tuple[str, int]] = []
    for w in snap.workloads.values():
        for p in w.spec.ports:
            sockets.append((w.spec.address, p.port))
            assert p.appPort is not None
            sockets.append((w.spec.appAddress, p.appPort))
    for g in snap.gateways.values():
        sockets.append((g.spec.address, g.spec.port))
    assert len(sockets) == len(set(sockets))
