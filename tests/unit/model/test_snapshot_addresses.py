"""ModelSnapshot.local_addresses: stable loopback addresses for services."""

from __future__ import annotations

import hashlib
import ipaddress
import types
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gossamer.model.snapshot as snapshot_module
from gossamer.model import ModelSnapshot, check_references
from gossamer.model.snapshot import Ref
from gossamer.store.base import StoredResource
from gossamer.testing import strategies

from .builders import parse, service, snapshot

POOL = ipaddress.IPv4Network("127.128.0.0/9")


def usable(address: str, pool: ipaddress.IPv4Network = POOL) -> bool:
    ip = ipaddress.IPv4Address(address)
    return ip in pool and ip.packed[-1] not in (0, 255)


def fixed_hash(slots: dict[str, int]) -> types.SimpleNamespace:
    """A stand-in for hashlib whose sha256 of "ns/name" starts with ``slots[name]``."""

    def sha256(data: bytes) -> types.SimpleNamespace:
        name = data.decode().split("/", 1)[1]
        digest = slots[name].to_bytes(4, "big") + bytes(28)
        return types.SimpleNamespace(digest=lambda: digest)

    return types.SimpleNamespace(sha256=sha256)


def test_addresses_are_pinned() -> None:
    """The hash is part of the contract: changing it moves every app's dependencies."""
    snap = snapshot(service("web"), service("catalog"), service("reviews"), service("ratings"))
    assert snap.local_addresses == {
        ("default", "catalog"): "127.243.69.130",
        ("default", "ratings"): "127.144.79.90",
        ("default", "reviews"): "127.139.215.108",
        ("default", "web"): "127.179.173.233",
    }


def test_the_namespace_is_part_of_the_hash() -> None:
    snap = snapshot(service("web"), service("web", namespace="shop"))
    a, b = snap.local_addresses[("default", "web")], snap.local_addresses[("shop", "web")]
    assert a != b
    assert usable(a)
    assert usable(b)


@settings(max_examples=100)
@given(
    st.lists(st.tuples(strategies.names, strategies.names), min_size=1, max_size=20, unique=True)
)
def test_every_address_is_in_the_pool_and_unique(refs: list[Ref]) -> None:
    snap = snapshot(*(service(name, namespace=ns) for ns, name in refs))
    addresses = snap.local_addresses
    assert set(addresses) == set(refs)
    assert all(usable(a) for a in addresses.values())
    assert len(set(addresses.values())) == len(refs)


def test_an_explicit_address_wins() -> None:
    snap = snapshot(service("web", localAddress="127.0.0.80"), service("db", localAddress="::1"))
    assert snap.local_addresses == {("default", "web"): "127.0.0.80", ("default", "db"): "::1"}


def test_a_hashed_address_skips_an_explicit_one() -> None:
    web = "127.179.173.233"  # web's hashed address (see test_addresses_are_pinned)
    snap = snapshot(service("other", localAddress=web), service("web"))
    assert snap.local_addresses[("default", "other")] == web
    assert snap.local_addresses[("default", "web")] == "127.179.173.234"


# names whose hashes collide, found by search: both hash to 127.186.212.112
COLLIDING = ("s140", "s2929")


def test_on_a_collision_the_older_service_keeps_the_address() -> None:
    first, second = COLLIDING
    snap = snapshot(service(first), service(second))
    assert snap.local_addresses[("default", first)] == "127.186.212.112"
    assert snap.local_addresses[("default", second)] == "127.186.212.113"
    swapped = snapshot(service(second), service(first))
    assert swapped.local_addresses[("default", second)] == "127.186.212.112"
    assert swapped.local_addresses[("default", first)] == "127.186.212.113"


def test_without_creation_order_the_ref_breaks_the_tie() -> None:
    first, second = sorted(COLLIDING)
    snap = ModelSnapshot(resources={r.key: r for r in parse(service(second), service(first))})
    assert snap.local_addresses[("default", first)] == "127.186.212.112"
    assert snap.local_addresses[("default", second)] == "127.186.212.113"


def test_deleting_the_older_service_gives_its_address_to_the_newer_one() -> None:
    first, second = COLLIDING
    snap = snapshot(service(first), service(second))
    later = snap.with_changes(deletes=[parse(service(first))[0].key])
    assert later.local_addresses == {("default", second): "127.186.212.112"}


@pytest.mark.parametrize(
    ("name", "hashed", "allocated"),
    [
        ("e438", "127.151.64.255", "127.151.65.1"),  # skips .255 and the next .0
        ("e580", "127.168.66.0", "127.168.66.1"),
    ],
)
def test_addresses_ending_in_0_or_255_are_skipped(name: str, hashed: str, allocated: str) -> None:
    slot = int.from_bytes(hashlib.sha256(f"default/{name}".encode()).digest()[:4])
    assert str(POOL.network_address + slot % POOL.num_addresses) == hashed
    assert snapshot(service(name)).local_addresses[("default", name)] == allocated


def test_probing_wraps_around_the_end_of_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    last = POOL.num_addresses - 2  # 127.255.255.254
    monkeypatch.setattr(snapshot_module, "hashlib", fixed_hash({"a": last, "b": last}))
    snap = snapshot(service("a"), service("b"))
    # b: .254 is taken, .255 ends in 255, wrapping to 127.128.0.0 ends in 0
    assert snap.local_addresses == {
        ("default", "a"): "127.255.255.254",
        ("default", "b"): "127.128.0.1",
    }


def test_a_long_chain_of_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"s{i}" for i in range(300)]
    monkeypatch.setattr(snapshot_module, "hashlib", fixed_hash(dict.fromkeys(names, 0)))
    snap = snapshot(*(service(n) for n in names))
    got = [snap.local_addresses[("default", n)] for n in names]
    assert len(set(got)) == len(names)
    assert all(usable(a) for a in got)
    assert got[:3] == ["127.128.0.1", "127.128.0.2", "127.128.0.3"]
    assert got[253:255] == ["127.128.0.254", "127.128.1.1"]


SMALL_POOL = ipaddress.IPv4Network("127.128.0.0/28")  # 15 usable addresses: collisions galore


@settings(max_examples=100, deadline=None)
@given(
    st.lists(strategies.names, min_size=1, max_size=12, unique=True),
    st.data(),
)
def test_adding_services_never_moves_an_existing_one(names: list[str], data: st.DataObject) -> None:
    order = data.draw(st.permutations(names))
    explicit = data.draw(st.sets(st.sampled_from(names)))
    with mock.patch.object(snapshot_module, "VIP_NET", SMALL_POOL):
        snap = ModelSnapshot(revision=1)
        seen: dict[Ref, str] = {}
        for i, name in enumerate(order):
            extra = {"localAddress": f"127.0.0.{i + 1}"} if name in explicit else {}
            snap = snap.with_changes(puts=parse(service(name, **extra)))
            now = snap.local_addresses
            assert {ref: now[ref] for ref in seen} == seen
            seen = dict(now)
        hashed = [a for (_, n), a in seen.items() if n not in explicit]
        assert len(set(hashed)) == len(hashed)
        assert all(usable(a, SMALL_POOL) for a in hashed)


@settings(max_examples=100, deadline=None)
@given(st.lists(strategies.names, min_size=1, max_size=12, unique=True), st.randoms())
def test_addresses_do_not_depend_on_listing_order(names: list[str], rnd: object) -> None:
    rows = [
        StoredResource(r.key, r.to_manifest(), i + 1, i + 1)
        for i, r in enumerate(parse(*(service(n) for n in names)))
    ]
    shuffled = list(rows)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    with mock.patch.object(snapshot_module, "VIP_NET", SMALL_POOL):
        a = ModelSnapshot.from_stored(rows, revision=len(rows)).local_addresses
        b = ModelSnapshot.from_stored(shuffled, revision=len(rows)).local_addresses
    assert a == b


def test_an_explicit_address_cannot_take_an_existing_services_address() -> None:
    before = snapshot(service("web"))
    web = before.local_addresses[("default", "web")]
    after = before.with_changes(puts=parse(service("thief", localAddress=web)))
    moved = after.local_addresses[("default", "web")] != web
    assert not moved or check_references(after), "web moved without an error"
