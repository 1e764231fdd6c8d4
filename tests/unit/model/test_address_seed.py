"""A mesh's address seed (``AddressSeed`` in the system namespace) and the addresses it
gives: two meshes on one machine must not allocate the same stable local addresses."""

from __future__ import annotations

import pytest

from gossamer.errors import ValidationError
from gossamer.model import parse_manifest
from gossamer.types import SYSTEM_NAMESPACE, Manifest

from .builders import manifest, parse, service, snapshot

SEED_A = "0" * 31 + "a"
SEED_B = "0" * 31 + "b"
#: ``default/reviews``'s address in a store without a seed (created before seeds)
LEGACY_REVIEWS = "127.139.215.108"


def seed(value: str) -> Manifest:
    return manifest("AddressSeed", "local-addresses", {"seed": value}, namespace=SYSTEM_NAMESPACE)


def addresses(*manifests: Manifest) -> dict[tuple[str, str], str]:
    return snapshot(*manifests, service("web"), service("reviews")).local_addresses


def test_the_same_seed_gives_the_same_addresses() -> None:
    assert addresses(seed(SEED_A)) == addresses(seed(SEED_A))


def test_different_seeds_give_a_service_different_addresses() -> None:
    a, b = addresses(seed(SEED_A)), addresses(seed(SEED_B))
    assert a[("default", "reviews")] != b[("default", "reviews")]
    assert a[("default", "web")] != b[("default", "web")]


def test_a_seed_moves_the_address_away_from_the_legacy_one() -> None:
    assert addresses(seed(SEED_A))[("default", "reviews")] != LEGACY_REVIEWS


def test_without_a_seed_the_addresses_are_todays() -> None:
    """A store created before seeds keeps what its running apps dial."""
    assert addresses()[("default", "reviews")] == LEGACY_REVIEWS
    assert addresses(seed("")) == addresses()


def test_the_seed_is_read_from_the_snapshot() -> None:
    snap = snapshot(seed(SEED_A), service("reviews"))
    assert snap.address_seed == SEED_A
    assert snapshot(service("reviews")).address_seed == ""


def test_a_seed_change_reaches_a_later_snapshot() -> None:
    """``with_changes`` (the control plane's path for every apply) sees a new seed."""
    before = snapshot(service("reviews"))
    after = before.with_changes(puts=parse(seed(SEED_A)))
    assert after.local_addresses != before.local_addresses
    assert after.local_addresses == snapshot(seed(SEED_A), service("reviews")).local_addresses


@pytest.mark.parametrize("bad", ["xyz", "A" * 32, "0" * 31, "0" * 33])
def test_a_bad_seed_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_manifest(seed(bad))
    assert "spec.seed" in str(raised.value)
    assert "32 lowercase hex digits" in str(raised.value)
