"""``Workload``: addresses, ports, the sidecar rules, dependencies, version and zone."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.model import Workload, parse_manifest

from .builders import errors_of, manifest, workload


def wl(**spec: Any) -> Workload:
    w = parse_manifest(workload("w", "web", **spec))
    assert isinstance(w, Workload)
    return w


def test_defaults() -> None:
    w = wl()
    assert w.spec.appAddress == "127.0.0.1"
    assert w.spec.sidecar is True
    assert w.spec.host is None
    assert w.spec.zone is None
    assert w.spec.health == "healthy"
    assert w.spec.weight == 1
    assert w.spec.dependencies == []
    assert w.spec.ports[0].name is None


def test_required_fields() -> None:
    assert errors_of(manifest("Workload", "w", {})) == [
        "Workload default/w: spec.service: required field is missing",
        "Workload default/w: spec.address: required field is missing",
        "Workload default/w: spec.ports: required field is missing",
    ]


def test_ports_may_not_be_empty() -> None:
    (error,) = errors_of(workload("w", "web", ports=[]))
    assert error.startswith("Workload default/w: spec.ports: list should have at least 1 item")


def test_address_may_be_any_ip() -> None:
    assert wl(address="10.0.0.7").spec.address == "10.0.0.7"
    (error,) = errors_of(workload("w", "web", address="host-1"))
    assert error == (
        "Workload default/w: spec.address: 'host-1' is not an IP address: write e.g. '127.0.0.2'"
    )


@pytest.mark.parametrize("health", ["healthy", "unhealthy", "draining"])
def test_health_states(health: str) -> None:
    assert wl(health=health).spec.health == health


def test_bad_health() -> None:
    assert errors_of(workload("w", "web", health="sick")) == [
        "Workload default/w: spec.health: input should be 'healthy', 'unhealthy' or 'draining'"
    ]


@pytest.mark.parametrize("weight", [1, 128])
def test_weight_in_range(weight: int) -> None:
    assert wl(weight=weight).spec.weight == weight


@pytest.mark.parametrize("weight", [0, 129])
def test_weight_out_of_range(weight: int) -> None:
    assert errors_of(workload("w", "web", weight=weight)) == [
        "Workload default/w: spec.weight: must be 1..128"
    ]


def test_host_and_zone_follow_the_name_rule() -> None:
    errors = errors_of(workload("w", "web", host="Host_1", zone="EU"))
    assert [e.split(": ")[1] for e in errors] == ["spec.host", "spec.zone"]


# -- the sidecar rules -------------------------------------------------------------------


def test_app_port_is_required_with_a_sidecar() -> None:
    assert errors_of(workload("w", "web", ports=[{"port": 80}])) == [
        "Workload default/w: spec: ports[0].appPort is required when sidecar is true"
    ]


def test_app_port_is_optional_without_a_sidecar() -> None:
    w = wl(sidecar=False, ports=[{"port": 8080}])
    assert w.spec.sidecar is False
    assert w.spec.ports[0].appPort is None


def test_sidecar_and_app_cannot_share_address_and_port() -> None:
    errors = errors_of(
        workload("w", "web", appAddress="127.0.0.2", ports=[{"port": 80, "appPort": 80}])
    )
    assert errors == [
        "Workload default/w: spec: ports[0]: the sidecar and the app cannot both listen on "
        "127.0.0.2:80; give appPort another port"
    ]


def test_same_port_is_fine_when_the_app_listens_on_another_address() -> None:
    w = wl(ports=[{"port": 80, "appPort": 80}])  # app on 127.0.0.1, sidecar on 127.0.0.2
    assert w.spec.ports[0].appPort == 80


def test_app_address_is_compared_after_normalization() -> None:
    errors = errors_of(
        workload("w", "web", address="::1", appAddress="0::1", ports=[{"port": 80, "appPort": 80}])
    )
    assert len(errors) == 1
    assert "cannot both listen on ::1:80" in errors[0]


def test_dependencies_need_a_sidecar() -> None:
    errors = errors_of(
        workload("w", "web", sidecar=False, ports=[{"port": 80}], dependencies=[{"service": "db"}])
    )
    assert errors == [
        "Workload default/w: spec: dependencies need a sidecar: set sidecar: true or remove them"
    ]


# -- dependencies ------------------------------------------------------------------------


def test_dependency_defaults() -> None:
    (dep,) = wl(dependencies=[{"service": "db"}]).spec.dependencies
    assert dep.service == "db"
    assert dep.namespace is None
    assert dep.port is None
    assert dep.localAddress is None
    assert dep.localPort is None


def test_dependency_fields() -> None:
    (dep,) = wl(
        dependencies=[
            {
                "service": "db",
                "namespace": "data",
                "port": "sql",
                "localAddress": "127.0.0.77",
                "localPort": 5432,
            }
        ]
    ).spec.dependencies
    assert (dep.namespace, dep.port, dep.localAddress, dep.localPort) == (
        "data",
        "sql",
        "127.0.0.77",
        5432,
    )


def test_dependency_field_errors() -> None:
    errors = errors_of(
        workload(
            "w",
            "web",
            dependencies=[
                {"service": "DB", "localAddress": "10.0.0.1", "localPort": 0, "extra": 1},
                {},
            ],
        )
    )
    assert [e.split(": ")[1] for e in errors] == [
        "spec.dependencies[0].service",
        "spec.dependencies[0].localAddress",
        "spec.dependencies[0].localPort",
        "spec.dependencies[0].extra",
        "spec.dependencies[1].service",
    ]
    assert errors[1].endswith("'10.0.0.1' is not a loopback address: use one in 127.0.0.0/8 or ::1")


def test_workload_port_field_errors() -> None:
    errors = errors_of(workload("w", "web", ports=[{"name": "Web", "port": 0, "appPort": 70000}]))
    assert errors == [
        "Workload default/w: spec.ports[0].name: 'Web' is not a valid name: use 1-63 lowercase "
        "letters, digits and '-', starting and ending with a letter or digit",
        "Workload default/w: spec.ports[0].port: must be 1..65535",
        "Workload default/w: spec.ports[0].appPort: must be 1..65535",
    ]


# -- version and zone --------------------------------------------------------------------


def test_version_comes_from_the_label() -> None:
    w = parse_manifest(workload("w", "web", labels={"version": "v2"}))
    assert isinstance(w, Workload)
    assert w.version == "v2"
    assert wl().version is None


def test_zone_prefers_the_spec_over_the_label() -> None:
    labelled = parse_manifest(workload("w", "web", labels={"zone": "b"}))
    assert isinstance(labelled, Workload)
    assert labelled.zone == "b"
    both = parse_manifest(workload("w", "web", labels={"zone": "b"}, zone="a"))
    assert isinstance(both, Workload)
    assert both.zone == "a"
    assert wl().zone is None


def test_two_ports_of_one_workload_cannot_listen_on_the_same_port() -> None:
    errors_of(
        workload("w", "web", ports=[{"port": 80, "appPort": 8080}, {"port": 80, "appPort": 8081}])
    )
