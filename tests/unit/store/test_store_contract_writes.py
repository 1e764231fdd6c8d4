"""The Store contract for writes and reads, run against every backend."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from store_helpers import DEADLINE, StoreMaker, manifest, take

from gossamer.errors import StaleModelError, StoreError, ValidationError
from gossamer.store.base import StoreStatistics
from gossamer.types import ResourceKey

CART = ResourceKey("Service", "default", "cart")


@pytest.mark.asyncio
async def test_empty_store(make_store: StoreMaker) -> None:
    store = await make_store()
    assert await store.revision() == 0
    assert await store.list() == ([], 0)
    assert await store.get(CART) is None


@pytest.mark.asyncio
async def test_each_transaction_gets_the_next_revision(make_store: StoreMaker) -> None:
    store = await make_store()
    assert await store.apply([manifest("Service", "cart", port=80)]) == 1
    assert (
        await store.apply(
            [manifest("Service", "shop", "prod", port=81), manifest("Route", "cart", port=82)]
        )
        == 2
    )
    assert await store.revision() == 2

    cart = await store.get(CART)
    assert cart is not None
    assert cart.key == CART
    assert cart.manifest == manifest("Service", "cart", port=80)
    assert (cart.revision, cart.create_revision) == (1, 1)
    shop = await store.get(ResourceKey("Service", "prod", "shop"))
    assert shop is not None and (shop.revision, shop.create_revision) == (2, 2)


@pytest.mark.asyncio
async def test_update_keeps_create_revision(make_store: StoreMaker) -> None:
    store = await make_store()
    await store.apply([manifest("Service", "cart", port=80)])
    await store.apply([manifest("Service", "other")])
    assert await store.apply([manifest("Service", "cart", port=8080)]) == 3
    cart = await store.get(CART)
    assert cart is not None
    assert cart.manifest["spec"] == {"port": 8080}
    assert (cart.revision, cart.create_revision) == (3, 1)


@pytest.mark.asyncio
async def test_namespace_defaults_to_default(make_store: StoreMaker) -> None:
    store = await make_store()
    explicit = manifest("Service", "cart", "default")
    await store.apply([manifest("Service", "cart")])
    # The same key: an explicit "default" namespace is a different manifest, so an update.
    assert await store.apply([explicit]) == 2
    items, _ = await store.list()
    assert [r.key for r in items] == [CART]


@pytest.mark.asyncio
async def test_identical_reapply_and_missing_delete_are_no_ops(make_store: StoreMaker) -> None:
    store = await make_store()
    cart = manifest("Service", "cart", port=80, labels={"a": "1", "b": "2"})
    assert await store.apply([cart]) == 1
    # Same content, other key order: canonical comparison finds no change.
    reordered = {
        "spec": {"labels": {"b": "2", "a": "1"}, "port": 80},
        "metadata": {"name": "cart"},
        "kind": "Service",
        "apiVersion": "gossamer.dev/v1",
    }
    assert await store.apply([reordered]) == 1
    assert await store.apply(deletes=[ResourceKey("Service", "default", "nope")]) == 1
    assert await store.apply() == 1
    assert await store.revision() == 1
    # A batch with one real change among no-ops gets one revision, logging only the change.
    assert (
        await store.apply(
            [cart, manifest("Service", "shop")], [ResourceKey("Service", "default", "nope")]
        )
        == 2
    )
    [batch] = await take(store.watch(1), 1)
    assert [(c.type, c.key.name) for c in batch] == [("put", "shop")]


@pytest.mark.asyncio
async def test_delete(make_store: StoreMaker) -> None:
    store = await make_store()
    await store.apply([manifest("Service", "cart"), manifest("Service", "shop")])
    assert await store.apply(deletes=[CART]) == 2
    assert await store.get(CART) is None
    items, revision = await store.list()
    assert [r.key.name for r in items] == ["shop"] and revision == 2
    # Re-creating gets a fresh create_revision.
    await store.apply([manifest("Service", "cart")])
    cart = await store.get(CART)
    assert cart is not None and (cart.revision, cart.create_revision) == (3, 3)


@pytest.mark.asyncio
async def test_list_filters_and_sorts(make_store: StoreMaker) -> None:
    store = await make_store()
    await store.apply(
        [
            manifest("Service", "b", "prod"),
            manifest("Service", "a", "prod"),
            manifest("Service", "z"),
            manifest("Route", "a", "prod"),
        ]
    )
    await store.apply([manifest("Route", "r")])

    def names(items: list) -> list[str]:  # type: ignore[type-arg]
        return [str(r.key) for r in items]

    everything, revision = await store.list()
    assert revision == 2
    assert names(everything) == [
        "Route default/r",
        "Route prod/a",
        "Service default/z",
        "Service prod/a",
        "Service prod/b",
    ]
    assert names((await store.list(kind="Service"))[0]) == [
        "Service default/z",
        "Service prod/a",
        "Service prod/b",
    ]
    assert names((await store.list(namespace="prod"))[0]) == [
        "Route prod/a",
        "Service prod/a",
        "Service prod/b",
    ]
    assert names((await store.list("Route", "default"))[0]) == ["Route default/r"]
    assert (await store.list(kind="Nothing")) == ([], 2)


@pytest.mark.asyncio
async def test_list_is_consistent_with_its_revision_under_concurrent_writes(
    make_store: StoreMaker,
) -> None:
    store = await make_store()
    transactions = 40

    async def write() -> None:
        # Transaction i (revision i + 1) adds item-i and sets the counter to i.
        for i in range(transactions):
            await store.apply(
                [manifest("Item", f"item-{i}", n=i), manifest("Counter", "c", value=i)]
            )

    item_listings: list[tuple[int, int]] = []
    counter_listings: list[tuple[int, int | None]] = []

    async def read(writer: asyncio.Task[None]) -> None:
        while not writer.done() or not item_listings:
            items, revision = await store.list(kind="Item")
            assert all(r.revision <= revision for r in items)
            item_listings.append((revision, len(items)))
            counters, revision = await store.list(kind="Counter")
            counter_listings.append(
                (revision, counters[0].manifest["spec"]["value"] if counters else None)
            )

    async with asyncio.timeout(DEADLINE), asyncio.TaskGroup() as tasks:
        writer = tasks.create_task(write())
        tasks.create_task(read(writer))

    # At revision r, exactly transactions 0..r-1 are visible.
    assert all(count == revision for revision, count in item_listings)
    assert all(
        value == (revision - 1 if revision else None) for revision, value in counter_listings
    )
    # The reader really ran between writes.
    assert len({revision for revision, _ in item_listings}) > 1


@pytest.mark.asyncio
async def test_a_failing_batch_changes_nothing(make_store: StoreMaker) -> None:
    store = await make_store()
    await store.apply([manifest("Service", "cart", port=1)])
    watch = store.watch(1)
    bad_batches = [
        # The second put cannot be stored: the first one must not be applied either.
        ([manifest("Service", "cart", port=2), manifest("Service", "x", bad={1, 2})], []),
        ([manifest("Service", "cart", port=2), manifest("Service", "nan", v=float("nan"))], []),
        ([manifest("Service", "cart", port=2), {"kind": "Service", "metadata": {}}], []),
        ([manifest("Service", "cart", port=2), manifest("Service", "cart", port=3)], []),
        ([manifest("Service", "cart", port=2)], [CART]),
        ([manifest("Service", "cart", port=2)], [("Service", "", "x")]),
    ]
    for puts, deletes in bad_batches:
        with pytest.raises(ValidationError):
            await store.apply(puts, deletes)  # type: ignore[arg-type]
    assert await store.revision() == 1
    cart = await store.get(CART)
    assert cart is not None and cart.manifest["spec"] == {"port": 1}
    assert [r.key.name for r in (await store.list())[0]] == ["cart"]
    # Watchers saw nothing of them: the next batch is the next good transaction.
    assert await store.apply([manifest("Service", "shop")]) == 2
    async with asyncio.timeout(DEADLINE):
        batch = await anext(watch)
    assert [(c.key.name, c.revision) for c in batch] == [("shop", 2)]


@pytest.mark.asyncio
async def test_validation_errors_name_the_field(make_store: StoreMaker) -> None:
    store = await make_store()
    with pytest.raises(ValidationError) as info:
        await store.apply(
            [manifest("Service", "ok"), {"kind": "Service", "metadata": {"namespace": "prod"}}]
        )
    [error] = info.value.errors
    assert error.path == "metadata.name" and error.resource == "puts[1]"
    assert "non-empty string" in error.message
    with pytest.raises(ValidationError, match="more than once"):
        await store.apply([manifest("Service", "a")], [ResourceKey("Service", "default", "a")])


@pytest.mark.asyncio
async def test_manifests_are_copied_in_and_out(make_store: StoreMaker) -> None:
    store = await make_store()
    cart = manifest("Service", "cart", ports=[80])
    await store.apply([cart])
    cart["spec"]["ports"].append(81)
    got = await store.get(CART)
    assert got is not None and got.manifest["spec"]["ports"] == [80]
    got.manifest["spec"]["ports"].append(82)
    again = await store.get(CART)
    assert again is not None and again.manifest["spec"]["ports"] == [80]


@pytest.mark.asyncio
async def test_closed_store_refuses_calls(make_store: StoreMaker) -> None:
    store = await make_store()
    await store.apply([manifest("Service", "cart")])
    await store.close()
    await store.close()  # idempotent
    for call in (
        store.revision(),
        store.get(CART),
        store.list(),
        store.apply([manifest("Service", "x")]),
    ):
        with pytest.raises(StoreError, match="closed"):
            await call
    with pytest.raises(StoreError, match="closed"):
        store.watch(0)


@pytest.mark.asyncio
async def test_statistics_have_one_shape_for_every_backend(make_store: StoreMaker) -> None:
    store = await make_store(history=2)
    for i in range(3):
        await store.apply([manifest("Item", f"i{i}")])
    await store.apply(deletes=[ResourceKey("Item", "default", "i0")])
    stats = store.statistics()
    assert isinstance(stats, StoreStatistics)
    expected = StoreStatistics(
        backend=make_store.backend,
        revision=4,
        resources=2,
        log_entries=2,
        compact_revision=2,
        history=2,
        watchers=0,
        path=stats.path,
    )
    assert stats == expected
    assert (stats.path is None) == (make_store.backend == "memory")
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.revision = 5  # type: ignore[misc]


@pytest.mark.asyncio
async def test_a_write_checked_on_an_older_revision_is_refused(make_store: StoreMaker) -> None:
    """``unchanged_since``: stored only if no resource was written after that revision (a
    delete included); else refused with the newest such revision, and nothing written."""
    store = await make_store()
    first = await store.apply([manifest("Service", "cart", port=80)])
    second = await store.apply([manifest("Service", "shop", port=81)], unchanged_since=first)
    assert second == first + 1
    with pytest.raises(StaleModelError, match=f"after revision {first} ") as info:
        await store.apply([manifest("Service", "web", port=82)], unchanged_since=first)
    assert info.value.revision == second
    assert await store.get(ResourceKey("Service", "default", "web")) is None
    gone = await store.apply(deletes=[CART], unchanged_since=second)
    with pytest.raises(StaleModelError) as info:
        await store.apply([manifest("Service", "web", port=82)], unchanged_since=second)
    assert info.value.revision == gone
    assert await store.revision() == gone
