"""Endpoint-only publishes patch snapshots; the result must equal a full rebuild."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from gossamer.controlplane.incremental import TRANSLATED_KINDS, EndpointChange, endpoint_change
from gossamer.controlplane.plane import ControlPlane
from gossamer.controlplane.publisher import PUBLISH_SLICE
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.model.catalog import KINDS
from gossamer.store.memory import MemoryStore
from gossamer.testing.mesh import route, service, workload
from gossamer.translate.proxy import Translator
from gossamer.types import API_VERSION, ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot

SERVICES = ("a", "b", "c")
PROXIES = [
    ProxyIdentity("sidecar", "default", "client"),
    ProxyIdentity("sidecar", "default", "a-0"),
    ProxyIdentity("gateway", "default", "edge"),
]


def base() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [service(s, 8080 + i) for i, s in enumerate(SERVICES)]
    out.append(
        workload(
            "client",
            "a",
            "127.0.0.2",
            15000,
            18000,
            dependencies=[
                {"service": "a", "localAddress": "127.0.0.2", "localPort": 9001},
                {"service": "b", "localAddress": "127.0.0.2", "localPort": 9002},
            ],
        )
    )
    out += [worker(s, i, 1, "healthy", "v1") for s in SERVICES for i in range(2)]
    out.append(
        route(
            "a",
            "a",
            [
                {
                    "destinations": [
                        {"service": "a", "subset": {"version": "v1"}, "weight": 90},
                        {"service": "a", "subset": {"version": "v2"}, "weight": 10},
                    ]
                }
            ],
        )
    )
    out.append(
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {"port": 18080},
        }
    )
    out.append(
        {
            "apiVersion": API_VERSION,
            "kind": "Route",
            "metadata": {"name": "edge"},
            "spec": {
                "gateways": ["edge"],
                "rules": [
                    {"matches": [{"path": {"prefix": "/c"}}], "destinations": [{"service": "c"}]},
                    {
                        "matches": [{"path": {"prefix": "/b2"}}],
                        "destinations": [{"service": "b", "subset": {"version": "v2"}}],
                    },
                    {"destinations": [{"service": "b"}]},
                ],
            },
        }
    )
    return out


def worker(svc: str, i: int, weight: int, health: str, version: str) -> dict[str, Any]:
    n = SERVICES.index(svc) * 10 + i
    return workload(
        f"{svc}-{i}",
        svc,
        f"127.0.1.{n + 1}",
        15000,
        18000 + n,
        weight=weight,
        health=health,
        labels={"version": version},
    )


ops = st.one_of(
    st.tuples(
        st.just("put"),
        st.sampled_from(SERVICES),
        st.integers(0, 3),
        st.integers(1, 5),
        st.sampled_from(["healthy", "unhealthy", "draining"]),
        st.sampled_from(["v1", "v2"]),
    ),
    st.tuples(st.just("delete"), st.sampled_from(SERVICES), st.integers(0, 3)),
    st.tuples(st.just("route"), st.integers(1, 99)),
)


def versions(snap: Snapshot) -> dict[str, dict[str, str]]:
    return {t.short: {n: v.version for n, v in snap.of(t).items()} for t in ResourceType}


def assert_full_rebuilds(
    plane: ControlPlane,
    cache: SnapshotCache,
    op: object,
    proxies: Sequence[ProxyIdentity] = PROXIES,
) -> None:
    """Every proxy of ``proxies`` holds what a fresh translator gives from the plane's model
    (``op``: the step, named when it does not)."""
    assert plane.model is not None
    fresh_t, fresh_s = Translator(), Serializer()
    for p in proxies:
        expected = proxy_snapshot(fresh_t.proxy(plane.model, p), fresh_s)
        got = cache.get(p.node_id)
        assert got is not None
        assert versions(got) == versions(expected), (p.node_id, op)


def rebuilt_by(plane: ControlPlane) -> set[str]:
    """The node ids the plane's translator builds in full from now on (a spy on it)."""
    translator = plane.publisher.translator
    translate = translator.proxy
    built: set[str] = set()

    def spy(model: Any, proxy: ProxyIdentity, *args: Any) -> Any:
        built.add(proxy.node_id)
        return translate(model, proxy, *args)

    translator.proxy = spy  # type: ignore[method-assign, assignment]
    return built


async def published(
    store: MemoryStore,
    cache: SnapshotCache,
    more: Sequence[dict[str, Any]] = (),
    proxies: Sequence[ProxyIdentity] = PROXIES,
) -> ControlPlane:
    """A plane over ``store`` holding ``base()`` and ``more``, with every proxy of
    ``proxies`` attached to ``cache`` and given its first snapshot."""
    plane = ControlPlane(store, cache, XdsMonitor(CollectorRegistry()))
    await plane.load()
    await plane.apply([parse_manifest(m) for m in [*base(), *more]])
    for p in proxies:
        cache.attach(p)
    await plane.publish()
    return plane


async def scenario(steps: list[tuple[Any, ...]], *, interleave: bool = False) -> int:
    """Apply ``steps``, publishing after each; with ``interleave`` each change lands while
    a publish that yields after every proxy is half-way through (it keeps the model it
    started with; the publish after it catches up)."""
    store = MemoryStore()
    cache = SnapshotCache()
    plane = await published(store, cache)
    incremental = 0
    for op in steps:
        pending = None
        if interleave:
            pending = asyncio.create_task(plane.publish(slice_s=0))
            await asyncio.sleep(0)  # it takes the model, builds one proxy and yields
        if op[0] == "put":
            _, svc, i, weight, health, version = op
            await plane.apply([parse_manifest(worker(svc, i, weight, health, version))])
        elif op[0] == "delete":
            _, svc, i = op
            key = parse_manifest(worker(svc, i, 1, "healthy", "v1")).key
            if plane.model and key in plane.model.resources and key.name != "a-0":
                await plane.delete([key])
        else:
            await plane.apply(
                [
                    parse_manifest(
                        route(
                            "a",
                            "a",
                            [
                                {
                                    "destinations": [
                                        {
                                            "service": "a",
                                            "subset": {"version": "v1"},
                                            "weight": op[1],
                                        },
                                        {
                                            "service": "a",
                                            "subset": {"version": "v2"},
                                            "weight": 100 - op[1],
                                        },
                                    ]
                                }
                            ],
                        )
                    )
                ]
            )
        if pending is not None:
            await pending
        await plane.publish(slice_s=0 if interleave else PUBLISH_SLICE)
        incremental += plane.publisher.incremental_rounds > 0
        assert_full_rebuilds(plane, cache, op)
    await store.close()
    return incremental


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=12))
def test_incremental_publishes_equal_full_rebuilds(steps: list[tuple[Any, ...]]) -> None:
    asyncio.run(scenario(steps))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, min_size=1, max_size=8))
def test_publishes_overtaken_by_changes_still_equal_full_rebuilds(
    steps: list[tuple[Any, ...]],
) -> None:
    asyncio.run(scenario(steps, interleave=True))


def test_endpoint_changes_take_the_incremental_path() -> None:
    steps = [("put", "b", 0, 3, "unhealthy", "v1"), ("put", "c", 3, 1, "healthy", "v2")]
    assert asyncio.run(scenario(steps)) == 2


def test_a_workload_moving_between_subsets_updates_both_subset_clusters() -> None:
    # a-1 and b-1 go from subset v1 to v2 (both held: a by the client, b's v2 by the gateway)
    steps = [("put", "a", 1, 1, "healthy", "v2"), ("put", "b", 1, 1, "healthy", "v2")]
    assert asyncio.run(scenario(steps)) == 2


def test_every_kind_is_translated_or_said_not_to_be() -> None:
    """A new kind must be placed: read by translation (then endpoint-only and route-only
    rounds follow its changes) or not (NGAC policy goes through the access state)."""
    assert set(TRANSLATED_KINDS) <= set(KINDS)
    assert set(KINDS) - set(TRANSLATED_KINDS) == {
        "AccessPolicy",
        "AccessCommand",
        "JoinToken",
        "Agent",
        "OperatorToken",
    }


def test_a_lone_apply_is_diffed_from_what_it_put() -> None:
    """``endpoint_change`` of a model made from the one before by one apply looks only at
    the keys that apply put; its answer is the one a walk over every workload gives."""
    model = ModelSnapshot().with_changes([parse_manifest(m) for m in base()])
    put = parse_manifest(worker("b", 1, 7, "healthy", "v1"))
    then = model.with_changes([put]).at_revision(9)  # (as the plane keeps its model)
    assert then.changed_since(model) == {put.key}
    assert then.changed_since(then) is None and model.changed_since(then) is None
    unlinked = ModelSnapshot(then.revision, dict(then.resources), dict(then.created))
    unlinked = replace(unlinked, generations=then.generations)
    assert unlinked.changed_since(model) is None
    walked = endpoint_change(model, unlinked)
    assert walked is not None and walked.workloads == {("default", "b-1")}
    assert endpoint_change(model, then) == walked
    # a put that replaces nothing changes nothing, even if named
    same = model.with_changes([model.resources[put.key]])
    assert endpoint_change(model, same) == EndpointChange(frozenset(), frozenset())
