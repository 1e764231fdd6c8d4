"""Endpoint-only rounds stay incremental until the translation caches outgrow their pruned
size; only then does a full round (costing as much as translating every proxy) prune
them. A fixed count of rounds (100) made every hundredth endpoint change wait ~4 s at
1,000 proxies: the p99 of bench/xds_scale.py."""

from __future__ import annotations

import pytest
from test_tls_readiness import mesh_plane

from gossamer.controlplane import publisher as publisher_module
from gossamer.controlplane.plane import ControlPlane
from gossamer.model import parse_manifest

pytestmark = pytest.mark.asyncio


def reviews_1(weight: int) -> object:
    return parse_manifest(
        {
            "apiVersion": "gossamer.dev/v1",
            "kind": "Workload",
            "metadata": {"name": "reviews-1", "labels": {"version": "v1"}},
            "spec": {
                "service": "reviews",
                "address": "127.0.0.3",
                "weight": weight,
                "ports": [{"port": 15001, "appPort": 9080}],
            },
        }
    )


async def plane() -> ControlPlane:
    out = await mesh_plane("off")
    await out.publish()
    return out


async def test_endpoint_rounds_stay_incremental_past_a_hundred() -> None:
    p = await plane()
    for i in range(150):
        await p.apply([reviews_1(1 + i % 7)])  # type: ignore[list-item]
        await p.publish()
    assert p.publisher.incremental_rounds == 150


async def test_a_full_round_prunes_once_the_caches_outgrew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(publisher_module, "PRUNE_SLACK", 10)
    p = await plane()
    full_after: list[int] = []
    for i in range(40):
        before = p.publisher.incremental_rounds
        await p.apply([reviews_1(1 + i % 7)])  # type: ignore[list-item]
        await p.publish()
        if p.publisher.incremental_rounds == 0:
            full_after.append(before)
    assert full_after, "the caches grew past the slack and no full round pruned them"
    size = len(p.publisher.translator.memo) + len(p.publisher.serializer)
    assert size <= p.publisher._pruned_size + 10 + 10  # (bounded: slack + one round's growth)
