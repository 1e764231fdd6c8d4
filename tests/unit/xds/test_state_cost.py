"""A stream's work for a change is proportional to what changed, not to the snapshot.

Every ACK and every new snapshot makes a stream ask ``in_sync`` and ``plan`` on the event
loop; at 1000 services a gateway's snapshot holds thousands of resources. These tests count
how often the state reads a type's resources (a mapping that counts its reads stands in
for the snapshot's) while one route table or one endpoint set changes and is ACKed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import pytest
from xds_fakes import C, E, FakeEnvoy, L, R, cla, handshake, resources, snapshot

from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer, Versioned
from gossamer.xds.snapshot import Snapshot

MODES = pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
N = 200


class Counted(Mapping[str, Versioned]):
    """A read-only mapping that counts the keys and values read from it."""

    def __init__(self, inner: Mapping[str, Versioned]) -> None:
        self._inner = inner
        self.reads = 0

    def __getitem__(self, name: str) -> Versioned:
        self.reads += 1
        return self._inner[name]

    def __iter__(self) -> Iterator[str]:
        for name in self._inner:
            self.reads += 1
            yield name

    def __len__(self) -> int:
        return len(self._inner)


def counted(snap: Snapshot) -> tuple[Snapshot, dict[ResourceType, Counted]]:
    """``snap`` (digests and diffs kept) reading its resources through ``Counted``s."""
    views = {t: Counted(snap.of(t)) for t in ResourceType}
    return dataclasses.replace(snap, resources=views), views


def big(route_rev: int = 1) -> Snapshot:
    """N clusters and endpoint sets, one listener and one route table."""
    cs = {f"c{i}": 1 for i in range(N)}
    return snapshot(cs, dict(cs), {"l0": 1}, {"r0": route_rev})


def settle(env: FakeEnvoy, snap: Snapshot) -> list[str]:
    """What the stream's loop does for a new snapshot: the monitor's check, then push and
    ACK (each ACK checked again) until nothing is left; returns the types sent."""
    sent = []
    env.state.in_sync(snap)
    for _ in range(10):
        out = env.push(snap)
        if out is None:
            break
        sent.append(out.type.short)
        env.ack(out)
        env.state.in_sync(snap)
    assert env.state.in_sync(snap)
    return sent


@MODES
def test_a_route_change_reads_no_cluster_or_endpoint(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    handshake(env, big(1))
    snap, views = counted(big(2))
    assert settle(env, snap) == ["routes"]
    assert views[C].reads == 0
    assert views[E].reads == 0
    assert views[R].reads <= 4


@MODES
def test_an_endpoint_change_reads_only_the_changed_endpoints(delta: bool) -> None:
    env = FakeEnvoy(delta=delta)
    first = big()
    handshake(env, first)
    serializer = Serializer()
    changed = first.with_resources(E, {"c7": serializer.versioned(E, "c7", cla("c7", 2))}, 0.0)
    snap, views = counted(changed)
    assert settle(env, snap) == ["endpoints"]
    assert views[C].reads == 0
    assert views[E].reads <= 4
    out = env.state.types[E]
    assert out.known["c7"] == changed.of(E)["c7"].version


@MODES
def test_a_new_cluster_reads_what_is_sent(delta: bool) -> None:
    """A full rebuild diffed against the snapshot it replaces (as the publisher does)."""
    env = FakeEnvoy(delta=delta)
    first = big()
    handshake(env, first)
    cs = {f"c{i}": 1 for i in range(N + 1)}
    grown = Snapshot.build(
        resources(cs, dict(cs), {"l0": 1}, {"r0": 1}), Serializer(), previous=first
    )
    snap, views = counted(grown)
    env.request(E, sorted(cs), snap=snap)  # Envoy asks for the new cluster's endpoints
    assert sorted(settle(env, snap)) == ["clusters", "endpoints"]
    # SotW sends every cluster (a full set: each read once for its name and once for the
    # resource), delta only the new one; nothing else is read
    assert views[C].reads <= (0 if delta else 2 * (N + 1)) + 4
    assert views[E].reads <= 4
    assert views[L].reads == views[R].reads == 0
