"""A translator that memoised earlier rounds gives, after a change, exactly what a fresh
one gives: every input of a memoised piece is in its key (a Mesh default missing from the
outbound listeners' key would leave every sidecar with the old idle timeout)."""

from __future__ import annotations

import dataclasses

import pytest
from envoy.config.route.v3 import route_pb2
from translate_helpers import CLUSTER_INPUTS, proxies, shop

from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.translate.proxy import Translator
from gossamer.translate.telemetry import TelemetryService
from gossamer.types import ProxyIdentity
from gossamer.xds.serializer import Serializer

MESHES = [
    "spec: {defaults: {idleTimeout: 7m}}",
    "spec: {underscoreHeaders: reject}",
    "spec: {rateLimit: {failureMode: closed, timeout: 250ms}}",
    "spec: {tracing: {sampling: 25}}",
]


def _mesh(spec: str) -> ModelSnapshot:
    text = f"apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {{name: default}}\n{spec}\n"
    return shop().with_changes(parse_yaml(text, "mesh.yaml"))


def _bytes(t: Translator, snap: ModelSnapshot) -> dict[str, dict[str, bytes]]:
    out = {}
    for ident in proxies(snap):
        res = t.proxy(snap, ident)
        for kind in ("clusters", "endpoints", "listeners", "routes", "extension_configs"):
            for name, msg in getattr(res, kind).items():
                out.setdefault(ident.node_id, {})[f"{kind}/{name}"] = msg.SerializeToString(
                    deterministic=True
                )
    return out


@pytest.mark.parametrize("telemetry", [False, True], ids=["no-telemetry", "telemetry"])
@pytest.mark.parametrize("mesh", MESHES)
def test_a_warm_translator_equals_a_fresh_one_after_a_mesh_change(
    mesh: str, telemetry: bool
) -> None:
    def translator() -> Translator:
        t = Translator()
        if telemetry:
            t.telemetry_service = TelemetryService("127.0.0.1", 4317)
        return t

    warm = translator()
    _bytes(warm, shop())  # memoises every piece of the mesh as it was
    changed = _mesh(mesh)
    assert _bytes(warm, changed) == _bytes(translator(), changed)


@pytest.mark.parametrize("kind", CLUSTER_INPUTS)
def test_clusters_looked_up_once_are_those_a_fresh_translator_gives(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Clusters and endpoint sets are looked up once while what they read stays as it
    was: after a Route-only change not at all, after a change of a service or of its
    workloads only that service's, and always as a fresh translator gives them."""
    warm = Translator()
    base = shop()
    _bytes(warm, base)
    changed = base.with_changes(
        parse_yaml(f"apiVersion: gossamer.dev/v1\n{CLUSTER_INPUTS[kind]}\n", "change.yaml")
    )
    looked_up: list[object] = []
    cluster = warm.cluster

    def counted(*args: object, **kwargs: object) -> object:
        looked_up.append(args[1])
        return cluster(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(warm, "cluster", counted)
    assert _bytes(warm, changed) == _bytes(Translator(), changed)
    services = {cr[0][1] for cr in looked_up}  # type: ignore[index]
    if kind == "Route":
        assert services == set()
    elif kind in ("Service", "Workload"):  # only the changed service's
        assert services == {"reviews"}
    else:  # the Mesh or a TrafficPolicy: every service's
        assert services > {"reviews"}


TWO_GATEWAYS = """
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {name: edge-2}
spec: {address: 127.0.0.1, port: 18001, hosts: ["shop.example.com", "*"]}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: edge}
spec:
  gateways: [edge, edge-2]
  rules:
  - matches: [{path: {prefix: /api/ratings}, method: POST}]
    destinations: [{service: ratings}]
  - destinations: [{service: web}]
"""


def test_gateways_using_the_same_clusters_share_their_lookup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A second gateway routing to the same services takes the first one's clusters and
    endpoint sets as a whole, and gets what a fresh translator gives it."""
    snap = shop().with_changes(parse_yaml(TWO_GATEWAYS, "two.yaml"))
    warm = Translator()
    first = warm.proxy(snap, ProxyIdentity("gateway", "default", "edge"))
    pairs: list[object] = []
    pair = warm.cluster_pair
    monkeypatch.setattr(warm, "cluster_pair", lambda *a: pairs.append(a[1]) or pair(*a))
    second = warm.proxy(snap, ProxyIdentity("gateway", "default", "edge-2"))
    assert pairs == []
    assert (
        set(second.clusters)
        == set(first.clusters)
        == {
            "outbound|default/ratings|grpc",
            "outbound|default/web|http",
        }
    )
    assert _bytes(warm, snap) == _bytes(Translator(), snap)


def test_gateways_after_an_endpoint_change_of_a_service_they_route_to() -> None:
    """The clusters and endpoint sets gateways take as a whole are made again after a
    change of a workload of a service they route to (its endpoint set changed)."""
    snap = shop().with_changes(parse_yaml(TWO_GATEWAYS, "two.yaml"))
    warm = Translator()
    _bytes(warm, snap)
    weight = (
        "apiVersion: gossamer.dev/v1\nkind: Workload\nmetadata: {name: web-1}\n"
        "spec: {service: web, address: 127.0.0.2, host: host-a, "
        "ports: [{port: 15001, appPort: 18080}], weight: 7}\n"
    )
    changed = snap.with_changes(parse_yaml(weight, "weight.yaml"))
    assert _bytes(warm, changed) == _bytes(Translator(), changed)


def test_gateways_serving_the_same_routes_share_their_table_s_encoding() -> None:
    """Gateways serving the same routes share the encoding of their table, all but its
    name's field: each gateway's parts are its table's deterministic encoding, and its
    snapshot the one a serialiser encoding each table on its own gives."""
    snap = shop().with_changes(parse_yaml(TWO_GATEWAYS, "two.yaml"))
    warm = Translator()
    parts = {}
    for name in ("edge", "edge-2"):
        res = warm.proxy(snap, ProxyIdentity("gateway", "default", name))
        ((table_name, (table, encoded)),) = res.route_encodings.items()
        assert table is res.routes[table_name]
        assert b"".join(encoded) == table.SerializeToString(deterministic=True)
        plain = dataclasses.replace(res, route_encodings={})
        assert proxy_snapshot(res, Serializer()) == proxy_snapshot(plain, Serializer())
        parts[name] = encoded
    assert parts["edge"][1] is parts["edge-2"][1]  # encoded once
    assert parts["edge"][0] != parts["edge-2"][0]


def test_a_gateway_s_table_is_kept_encoded_only() -> None:
    """The translator keeps no decoded table of a gateway (15 MB for each gateway at 10,000
    hosts, beside the 4.6 MB encoding they share): each translation decodes its own from
    the kept parts, equal to the last."""
    snap = shop().with_changes(parse_yaml(TWO_GATEWAYS, "two.yaml"))
    warm = Translator()
    edge = ProxyIdentity("gateway", "default", "edge")
    first, second = warm.proxy(snap, edge), warm.proxy(snap, edge)
    ((name, table),) = first.routes.items()
    assert second.routes[name] == table and second.routes[name] is not table
    assert second.route_encodings[name][1] == first.route_encodings[name][1]
    kept = [v for entry in warm.memo._entries.values() for v in _values(entry)]
    assert not any(isinstance(v, route_pb2.RouteConfiguration) and v.name == name for v in kept)


def _values(entry: object) -> list[object]:
    """Everything a memo entry holds, nested in tuples, lists and dicts."""
    if isinstance(entry, tuple | list):
        return [x for e in entry for x in _values(e)] + [entry]
    if isinstance(entry, dict):
        return [x for e in entry.values() for x in _values(e)] + [entry]
    return [entry]
