"""check_references: every cross-resource error, with its resource and field."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.model import check_references
from gossamer.types import Manifest

from .builders import gateway, manifest, messages, route, service, snapshot, workload

MISSING = "does not exist: apply it first (or in the same input)"


def check(*ms: Manifest) -> list[str]:
    return messages(check_references(snapshot(*ms)))


def two_ports(name: str = "a", **spec: Any) -> Manifest:
    return service(name, ("http", 80, "http"), ("admin", 9000, "tcp"), **spec)


def test_a_consistent_mesh_has_no_errors() -> None:
    assert (
        check(
            manifest("Mesh", "default"),
            service("a"),
            two_ports("b"),
            service("c", namespace="other"),
            workload(
                "a1",
                "a",
                dependencies=[
                    {"service": "b", "port": "http"},
                    {"service": "b", "port": "admin"},
                    {"service": "c", "namespace": "other"},
                ],
            ),
            workload(
                "b1",
                "b",
                address="127.0.0.3",
                ports=[
                    {"name": "http", "port": 15006, "appPort": 8080},
                    {"name": "admin", "port": 15007, "appPort": 9000},
                ],
            ),
            gateway("edge"),
            route(
                "ew",
                service="a",
                rules=[
                    {
                        "destinations": [
                            {"service": "a", "weight": 80},
                            {"service": "b", "port": "http", "weight": 20},
                        ]
                    }
                ],
            ),
            route(
                "in",
                gateways=["edge"],
                rules=[{"destinations": [{"service": "c", "namespace": "other"}]}],
            ),
        )
        == []
    )


def test_an_empty_snapshot_has_no_errors() -> None:
    assert check() == []


# -- Mesh --------------------------------------------------------------------------------


def test_only_one_mesh() -> None:
    assert check(
        manifest("Mesh", "a"), manifest("Mesh", "b"), manifest("Mesh", "c", namespace="x")
    ) == [
        "Mesh default/b: only one Mesh may exist; Mesh default/a already does",
        "Mesh x/c: only one Mesh may exist; Mesh default/a already does",
    ]


def test_the_mesh_in_force_is_the_one_the_error_keeps() -> None:
    snap = snapshot(manifest("Mesh", "b"), manifest("Mesh", "a"))
    assert snap.mesh.metadata.name == "a"
    assert messages(check_references(snap)) == [
        "Mesh default/b: only one Mesh may exist; Mesh default/a already does"
    ]


# -- Workload ----------------------------------------------------------------------------


def test_workload_of_a_missing_service() -> None:
    assert check(workload("w", "ghost", namespace="shop")) == [
        f"Workload shop/w: spec.service: Service shop/ghost {MISSING}"
    ]


def test_the_service_must_be_in_the_workloads_namespace() -> None:
    assert check(service("a", namespace="other"), workload("w", "a")) == [
        f"Workload default/w: spec.service: Service default/a {MISSING}"
    ]


def test_workload_port_must_be_named_when_the_service_has_several() -> None:
    assert check(two_ports(), workload("w", "a")) == [
        "Workload default/w: spec.ports[0].name: "
        "Service default/a has several ports (http, admin): name one"
    ]


def test_workload_port_must_exist() -> None:
    ports = [{"name": "http", "port": 1, "appPort": 2}, {"name": "grpc", "port": 3, "appPort": 4}]
    assert check(two_ports(), workload("w", "a", ports=ports)) == [
        "Workload default/w: spec.ports[1].name: "
        "Service default/a has no port 'grpc': valid ports are http, admin"
    ]


def test_dependency_on_a_missing_service() -> None:
    deps = [{"service": "ghost"}, {"service": "a", "namespace": "x"}]
    assert check(service("a"), workload("w", "a", dependencies=deps)) == [
        f"Workload default/w: spec.dependencies[0].service: Service default/ghost {MISSING}",
        f"Workload default/w: spec.dependencies[1].service: Service x/a {MISSING}",
    ]


def test_dependency_port_must_be_named_and_exist() -> None:
    deps = [{"service": "b"}, {"service": "b", "port": "nope"}]
    assert check(service("a"), two_ports("b"), workload("w", "a", dependencies=deps)) == [
        "Workload default/w: spec.dependencies[0].port: "
        "Service default/b has several ports (http, admin): name one",
        "Workload default/w: spec.dependencies[1].port: "
        "Service default/b has no port 'nope': valid ports are http, admin",
    ]


def test_the_same_dependency_twice_listens_twice() -> None:
    deps = [{"service": "a"}, {"service": "b"}, {"service": "a"}]
    snap = snapshot(service("a"), service("b"), workload("w", "a", dependencies=deps))
    address = snap.local_addresses[("default", "a")]
    assert messages(check_references(snap)) == [
        f"Workload default/w: spec.dependencies[2]: listens on {address}:80 like "
        "dependencies[0]: set localAddress or localPort"
    ]


def test_two_dependencies_with_one_local_address_and_port_clash() -> None:
    deps = [
        {"service": "a", "localAddress": "127.0.0.9"},
        {"service": "b", "localAddress": "127.0.0.9", "localPort": 80},
    ]
    assert check(
        service("a"), service("b", ("http", 81, "http")), workload("w", "a", dependencies=deps)
    ) == [
        "Workload default/w: spec.dependencies[1]: listens on 127.0.0.9:80 like "
        "dependencies[0]: set localAddress or localPort"
    ]


def test_two_services_sharing_an_explicit_address_clash_in_one_workload() -> None:
    deps = [{"service": "a"}, {"service": "b"}]
    assert check(
        service("a", localAddress="127.0.0.9"),
        service("b", localAddress="127.0.0.9"),
        workload("w", "a", dependencies=deps),
    ) == [
        "Workload default/w: spec.dependencies[1]: listens on 127.0.0.9:80 like "
        "dependencies[0]: set localAddress or localPort",
        "Service default/b: spec.localAddress: 127.0.0.9:80 is already the address of "
        "Service default/a",
    ]


def test_local_port_or_address_resolve_a_clash() -> None:
    deps = [
        {"service": "a", "localAddress": "127.0.0.9"},
        {"service": "b", "localAddress": "127.0.0.9", "localPort": 81},
        {"service": "a", "localAddress": "127.0.0.10"},
    ]
    assert check(service("a"), service("b"), workload("w", "a", dependencies=deps)) == []


def test_two_workloads_on_one_address_and_port() -> None:
    assert check(
        service("a"),
        service("b"),
        workload("w1", "a"),
        workload("w2", "b"),
        workload("w3", "b", address="127.0.0.3"),
    ) == [
        "Workload default/w2: spec.ports[0].port: 127.0.0.2:15006 is already used by "
        "Workload default/w1"
    ]


def test_the_same_port_on_another_address_is_fine() -> None:
    assert check(service("a"), workload("w1", "a"), workload("w2", "a", address="::1")) == []


def test_a_service_cannot_mix_workloads_with_and_without_sidecars() -> None:
    assert check(
        service("a"),
        workload("w1", "a"),
        workload("w2", "a", address="127.0.0.3", sidecar=False, ports=[{"port": 8080}]),
    ) == ["Service default/a: has workloads with and without sidecars: move all of them at once"]


def test_the_sidecar_rule_is_per_service() -> None:
    assert (
        check(
            service("a"),
            service("b"),
            workload("w1", "a"),
            workload("w2", "b", address="127.0.0.3", sidecar=False, ports=[{"port": 8080}]),
        )
        == []
    )


def test_the_sidecar_rule_is_checked_even_for_a_missing_service() -> None:
    errors = check(
        workload("w1", "a"),
        workload("w2", "a", address="127.0.0.3", sidecar=False, ports=[{"port": 8080}]),
    )
    assert (
        "Service default/a: has workloads with and without sidecars: move all of them at once"
        in errors
    )


# -- Gateway -----------------------------------------------------------------------------


def test_two_gateways_on_one_address_and_port() -> None:
    assert check(
        gateway("a", 8000), gateway("b", 8000), gateway("c", 8000, address="127.0.0.5")
    ) == ["Gateway default/b: spec.port: 127.0.0.1:8000 is already used by Gateway default/a"]


def test_a_gateway_and_a_workload_cannot_share_an_address_and_port() -> None:
    assert check(service("a"), workload("w", "a"), gateway("g", 15006, address="127.0.0.2")) != []


# -- Route -------------------------------------------------------------------------------


def test_route_for_a_missing_service() -> None:
    assert check(route("r", service="ghost", rules=[{"destinations": [{"service": "ghost"}]}])) == [
        f"Route default/r: spec.service: Service default/ghost {MISSING}",
        f"Route default/r: spec.rules[0].destinations[0].service: Service default/ghost {MISSING}",
    ]


def test_route_for_a_tcp_only_service() -> None:
    tcp = service("db", ("sql", 5432, "tcp"))
    r = route("r", service="db", rules=[{"destinations": [{"service": "a"}]}])
    assert check(tcp, service("a"), r) == [
        "Route default/r: spec.service: "
        "routes are HTTP rules, but every port of this service is tcp"
    ]


def test_route_for_a_service_with_one_http_port_is_fine() -> None:
    r = route("r", service="a", rules=[{"destinations": [{"service": "a", "port": "http"}]}])
    assert check(two_ports(), r) == []


def test_route_to_a_missing_gateway() -> None:
    assert check(
        service("a"), gateway("g", namespace="other"), route("r", gateways=["g", "h"])
    ) == [
        f"Route default/r: spec.gateways[0]: Gateway default/g {MISSING}",
        f"Route default/r: spec.gateways[1]: Gateway default/h {MISSING}",
    ]


def test_destination_errors() -> None:
    rules = [
        {"destinations": [{"service": "ghost"}, {"service": "a", "namespace": "x"}]},
        {"destinations": [{"service": "b"}, {"service": "b", "port": "nope"}]},
        {"destinations": [{"service": "b", "port": "admin"}, {"service": "b", "port": "http"}]},
    ]
    assert check(service("a"), two_ports("b"), route("r", rules=rules)) == [
        f"Route default/r: spec.rules[0].destinations[0].service: Service default/ghost {MISSING}",
        f"Route default/r: spec.rules[0].destinations[1].service: Service x/a {MISSING}",
        "Route default/r: spec.rules[1].destinations[0].port: "
        "Service default/b has several ports (http, admin): name one",
        "Route default/r: spec.rules[1].destinations[1].port: "
        "Service default/b has no port 'nope': valid ports are http, admin",
        "Route default/r: spec.rules[2].destinations[0].port: "
        "a Route can only send to http, http2 or grpc ports",
    ]


@pytest.mark.parametrize("protocol", ["http", "http2", "grpc"])
def test_destinations_may_be_any_http_protocol(protocol: str) -> None:
    r = route("r", rules=[{"destinations": [{"service": "b"}]}])
    assert check(service("a"), service("b", ("p", 80, protocol)), r) == []


def test_errors_come_in_a_stable_order() -> None:
    ms = [
        manifest("Mesh", "a"),
        manifest("Mesh", "b"),
        workload("w", "ghost"),
        gateway("g1"),
        gateway("g2"),
        route("r", service="ghost", rules=[{"destinations": [{"service": "ghost"}]}]),
    ]
    first = check(*ms)
    assert [e.split(": ")[0] for e in first] == [
        "Mesh default/b",
        "Workload default/w",
        "Gateway default/g2",
        "Route default/r",
        "Route default/r",
    ]
