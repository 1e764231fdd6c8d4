"""The seed of a mesh's stable local addresses, written at the control plane's first start
(``controlplane.address_seed``), on a real plane over a real SQLite store reopened between
starts: a fresh store gets a random seed; a restart keeps it (and so every address); a store
created before seeds (resources, no seed) keeps today's addresses; two fresh stores differ."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossamer.controlplane.address_seed import ensure_address_seed
from gossamer.model import parse_yaml
from gossamer.model.internal import ADDRESS_SEED_KEY, AddressSeed
from gossamer.model.snapshot import Ref
from gossamer.store.sqlite import SQLiteStore
from gossamer.testing.controlplane import memory_control_plane

pytestmark = pytest.mark.asyncio

SERVICES = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}]}
"""
REVIEWS: Ref = ("default", "reviews")
#: ``default/reviews``'s address before seeds (the sha256 of ``default/reviews`` alone)
LEGACY_REVIEWS = "127.139.215.108"


async def start(path: Path, *, seed: bool = True, apply: bool = True) -> tuple[str, str]:
    """One start of a control plane on the store at ``path``: its seed and reviews' address."""
    async with memory_control_plane(await SQLiteStore.open(path)) as plane:
        if seed:
            await ensure_address_seed(plane)
        if apply:
            await plane.apply(parse_yaml(SERVICES))
        assert plane.model is not None
        record = plane.model.resources.get(ADDRESS_SEED_KEY)
        assert seed is False or isinstance(record, AddressSeed)
        return plane.model.address_seed, plane.model.local_addresses[REVIEWS]


async def test_a_fresh_store_gets_a_random_seed_and_a_restart_keeps_it(tmp_path: Path) -> None:
    first, address = await start(tmp_path / "a.db")
    assert len(first) == 32
    assert address != LEGACY_REVIEWS
    again, same = await start(tmp_path / "a.db", apply=False)
    assert (again, same) == (first, address)


async def test_two_fresh_stores_get_different_seeds_and_addresses(tmp_path: Path) -> None:
    a = await start(tmp_path / "a.db")
    b = await start(tmp_path / "b.db")
    assert a[0] != b[0]
    assert a[1] != b[1]


async def test_a_store_from_before_seeds_keeps_todays_addresses(tmp_path: Path) -> None:
    legacy = tmp_path / "legacy.db"
    assert await start(legacy, seed=False) == ("", LEGACY_REVIEWS)
    # the upgraded control plane: its apps still dial what they dialled
    assert await start(legacy, apply=False) == ("", LEGACY_REVIEWS)
    # and the seed it kept ("") is a record now, so a backup carries it
    assert await start(legacy, apply=False) == ("", LEGACY_REVIEWS)
