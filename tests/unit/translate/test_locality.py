"""Locality: each caller's endpoint sets put its own zone at priority 0 and the others at 1,
retries leave a failing priority, and zones are validated."""

from __future__ import annotations

import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.extensions.retry.priority.previous_priorities.v3 import (
    previous_priorities_config_pb2 as previous_priorities_pb2,
)

from gossamer.errors import ValidationError
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import Translator
from gossamer.types import ProxyIdentity

CATALOG = "outbound|default/catalog|http"


def _workload(name: str, service: str, address: str, zone: str | None, **extra: str) -> str:
    fields = "".join(f"\n  {k}: {v}" for k, v in extra.items())
    where = f"\n  zone: {zone}" if zone else ""
    return f"""
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: {name}}}
spec:
  service: {service}
  address: {address}
  ports: [{{port: 15001, appPort: 18080}}]{where}{fields}"""


def zoned_mesh(*, web_zone: str | None = "zone-a", gateway_zone: str | None = "zone-b") -> str:
    gw_zone = f", zone: {gateway_zone}" if gateway_zone else ""
    return (
        f"""
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: catalog}}
spec: {{ports: [{{name: http, port: 9080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: 18443{gw_zone}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  rules: [{{destinations: [{{service: catalog}}]}}]"""
        + _workload("web-1", "web", "127.0.0.2", web_zone, dependencies="[{service: catalog}]")
        + _workload("web-2", "web", "127.0.0.3", "zone-a", dependencies="[{service: catalog}]")
        + _workload("web-3", "web", "127.0.0.4", "zone-c", dependencies="[{service: catalog}]")
        + _workload("catalog-a1", "catalog", "127.0.1.1", "zone-a", weight="3")
        + _workload("catalog-a2", "catalog", "127.0.1.2", "zone-a")
        + _workload("catalog-b1", "catalog", "127.0.1.3", "zone-b")
        + _workload("catalog-x", "catalog", "127.0.1.4", None)
    )


def _snap(text: str) -> ModelSnapshot:
    return ModelSnapshot().with_changes(parse_yaml(text, "zones.yaml"))


def _priorities(cla: endpoint_pb2.ClusterLoadAssignment) -> dict[str, tuple[int, list[str]]]:
    return {
        loc.locality.zone: (loc.priority, [e.endpoint.hostname for e in loc.lb_endpoints])
        for loc in cla.endpoints
    }


def _eds(translator: Translator, snap: ModelSnapshot, kind: str, name: str) -> object:
    ident = ProxyIdentity("sidecar" if kind == "sidecar" else "gateway", "default", name)
    return translator.proxy(snap, ident).endpoints[CATALOG]


def test_a_caller_gets_its_own_zone_at_priority_0_and_every_other_at_1() -> None:
    cla = _eds(Translator(), _snap(zoned_mesh()), "sidecar", "web-1")
    assert isinstance(cla, endpoint_pb2.ClusterLoadAssignment)
    assert _priorities(cla) == {
        "zone-a": (0, ["catalog-a1", "catalog-a2"]),
        "zone-b": (1, ["catalog-b1"]),
        "": (1, ["catalog-x"]),  # no zone: another zone to every zoned caller
    }
    # the spill rule is stated: weighted health, Envoy's overprovisioning factor
    assert cla.policy.weighted_priority_health
    assert cla.policy.overprovisioning_factor.value == 140


def test_a_gateway_prefers_its_own_zone() -> None:
    cla = _eds(Translator(), _snap(zoned_mesh()), "gateway", "edge")
    assert isinstance(cla, endpoint_pb2.ClusterLoadAssignment)
    assert {z: p for z, (p, _) in _priorities(cla).items()} == {
        "zone-a": 1,
        "zone-b": 0,
        "": 1,
    }


@pytest.mark.parametrize(
    ("kind", "name", "text"),
    [
        ("sidecar", "web-1", zoned_mesh(web_zone=None)),  # the caller has no zone
        ("sidecar", "web-3", zoned_mesh()),  # no instance in the caller's zone
        ("gateway", "edge", zoned_mesh(gateway_zone=None)),
    ],
    ids=["no-caller-zone", "no-instance-in-caller-zone", "gateway-without-zone"],
)
def test_without_a_preference_every_zone_is_priority_0(kind: str, name: str, text: str) -> None:
    cla = _eds(Translator(), _snap(text), kind, name)
    assert isinstance(cla, endpoint_pb2.ClusterLoadAssignment)
    assert {p for p, _ in _priorities(cla).values()} == {0}
    assert not cla.HasField("policy")


def test_every_instance_in_the_callers_zone_is_one_priority() -> None:
    text = zoned_mesh().replace("zone: zone-b", "zone: zone-a")
    text = text.replace(
        "address: 127.0.1.4\n  ports: [{port: 15001, appPort: 18080}]",
        "address: 127.0.1.4\n  ports: [{port: 15001, appPort: 18080}]\n  zone: zone-a",
    )
    cla = _eds(Translator(), _snap(text), "sidecar", "web-1")
    assert isinstance(cla, endpoint_pb2.ClusterLoadAssignment)
    assert [(loc.locality.zone, loc.priority) for loc in cla.endpoints] == [("zone-a", 0)]


def test_callers_in_one_zone_share_one_endpoint_set() -> None:
    snap = _snap(zoned_mesh())
    translator = Translator()
    a1 = _eds(translator, snap, "sidecar", "web-1")
    a2 = _eds(translator, snap, "sidecar", "web-2")
    c = _eds(translator, snap, "sidecar", "web-3")
    b = _eds(translator, snap, "gateway", "edge")
    assert a1 is a2  # one build, one serialisation, for every caller in zone-a
    assert a1 is not c and a1 is not b and a1 != b


def test_retries_leave_the_priority_that_failed() -> None:
    res = Translator().proxy(_snap(zoned_mesh()), ProxyIdentity("sidecar", "default", "web-1"))
    [action] = [
        r.route
        for t in res.routes.values()
        for vh in t.virtual_hosts
        for r in vh.routes
        if r.route.cluster == CATALOG
    ]
    retry = action.retry_policy
    assert retry.retry_priority.name == "envoy.retry_priorities.previous_priorities"
    config = previous_priorities_pb2.PreviousPrioritiesConfig()
    assert retry.retry_priority.typed_config.Unpack(config)
    assert config.update_frequency == 1
    assert [p.name for p in retry.retry_host_predicate] == [
        "envoy.retry_host_predicates.previous_hosts"
    ]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (zoned_mesh(gateway_zone="Zone_B"), "spec.zone"),
        (zoned_mesh(web_zone="a.b"), "spec.zone"),
    ],
    ids=["gateway", "workload"],
)
def test_a_zone_must_be_a_name(text: str, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        parse_yaml(text, "zones.yaml")
    message = str(err.value)
    assert field in message and "lowercase letters, digits and '-'" in message


@pytest.mark.integration
def test_zoned_proxies_pass_envoy_validate() -> None:
    from gossamer.envoy.validate import validate_config_sync

    snap = _snap(zoned_mesh())
    translator = Translator()
    for ident in (
        ProxyIdentity("sidecar", "default", "web-1"),
        ProxyIdentity("gateway", "default", "edge"),
    ):
        res = translator.proxy(snap, ident)
        validate_config_sync(
            static_bootstrap(
                listeners=res.listeners.values(),
                clusters=res.clusters.values(),
                endpoints=res.endpoints.values(),
                routes=res.routes.values(),
                node=ident,
            ),
            timeout_s=120.0,
        )
