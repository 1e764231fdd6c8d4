"""An endpoint change patches the endpoint sets gateways share once for all of them
(``EndpointPatch.apply``): at 10k services each gateway's patch of its 10,000 sets took
~2.5 ms, the same work ten times over."""

from __future__ import annotations

import pytest
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment

from gossamer.controlplane.incremental import EndpointPatch
from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.testing.controlplane import memory_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.translate.proxy import Translator
from gossamer.types import API_VERSION, ProxyIdentity
from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer

E = ResourceType.ENDPOINT
GATEWAYS = [ProxyIdentity("gateway", "default", g) for g in ("edge", "side")]


def gateway(name: str, port: int) -> dict[str, object]:
    spec = {"address": "127.0.0.1", "port": port, "hosts": ["*"]}
    return {"apiVersion": API_VERSION, "kind": "Gateway", "metadata": {"name": name}, "spec": spec}


def ingress(to: str, timeout: str | None = None) -> dict[str, object]:
    rule: dict[str, object] = {"destinations": [{"service": to}]}
    if timeout is not None:
        rule["timeout"] = timeout
    spec = {"gateways": ["edge", "side"], "hosts": [f"{to}.example"], "rules": [rule]}
    return {"apiVersion": API_VERSION, "kind": "Route", "metadata": {"name": to}, "spec": spec}


def backend(to: str, i: int, weight: int = 1) -> dict[str, object]:
    return workload(f"{to}-1", to, f"127.0.0.{10 + i}", 15000 + i, 8000 + i, weight=weight)


MANIFESTS = [
    gateway("edge", 18000),
    gateway("side", 18001),
    *(m for i, to in enumerate("ab") for m in (service(to), backend(to, i), ingress(to))),
]


def mesh() -> ModelSnapshot:
    return ModelSnapshot().with_changes([parse_manifest(m) for m in MANIFESTS])


def test_gateways_sharing_their_endpoint_sets_share_the_patch() -> None:
    translator, serializer = Translator(), Serializer()
    before = mesh()
    held = [proxy_snapshot(translator.proxy(before, g), serializer) for g in GATEWAYS]
    assert held[0].of(E) is held[1].of(E)
    after = before.with_changes([parse_manifest(backend("a", 0, weight=7))])
    patch = EndpointPatch(after, frozenset({("default", "a")}), translator, serializer)
    patched = [patch.apply(snap, g, 1.0) for snap, g in zip(held, GATEWAYS, strict=True)]
    assert patched[0].of(E) is patched[1].of(E)  # (made once)
    for snap, g in zip(patched, GATEWAYS, strict=True):
        fresh = proxy_snapshot(Translator().proxy(after, g), Serializer())
        assert snap.resources == fresh.resources and snap.digests == fresh.digests
        assert snap.diffs[E].changed == ("outbound|default/a|http",)


def test_a_patch_applies_only_to_a_snapshot_holding_what_it_was_made_on() -> None:
    translator, serializer = Translator(), Serializer()
    snap = proxy_snapshot(translator.proxy(mesh(), GATEWAYS[0]), serializer)
    other = proxy_snapshot(Translator().proxy(mesh(), GATEWAYS[0]), Serializer())
    name = next(iter(snap.of(E)))
    emptied = serializer.versioned(E, name, ClusterLoadAssignment(cluster_name=name))
    patch = snap.patch_type(E, {name: emptied})
    assert snap.with_patch(patch, 1.0).of(E)[name] is emptied
    with pytest.raises(ValueError, match="not made on"):
        other.with_patch(patch, 1.0)


@pytest.mark.asyncio
async def test_endpoint_and_route_rounds_serve_gateways_what_a_fresh_translator_gives() -> None:
    """The translator keeps the sets gateways share across endpoint changes and patches them
    where workloads changed (``cluster_sets.SetsKept``), while endpoint rounds patch the
    gateways' snapshots: after any sequence of both, each gateway holds exactly what a
    fresh translation of the model gives it (sets kept stale fail this)."""
    async with memory_control_plane() as plane:
        await plane.apply([parse_manifest(m) for m in MANIFESTS], wait=False)
        for g in GATEWAYS:
            plane.cache.attach(g)
        await plane.publish()
        for k, (to, weight) in enumerate([("a", 3), ("b", 4), ("a", 5), ("a", 6)]):
            await plane.apply([parse_manifest(backend(to, "ab".index(to), weight))], wait=False)
            await plane.publish()  # (an endpoint round: the gateways' snapshots patched)
            if k % 2:
                await plane.apply([parse_manifest(ingress(to, timeout=f"{k}s"))], wait=False)
                await plane.publish()  # (a route round: the gateways translated again)
        model = plane.model
        assert model is not None
        for g in GATEWAYS:
            held = plane.cache.get(g.node_id)
            fresh = proxy_snapshot(Translator().proxy(model, g), Serializer())
            assert held is not None and held.resources == fresh.resources, g.node_id
