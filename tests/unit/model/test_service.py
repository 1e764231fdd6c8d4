"""``Service``: ports, protocols, local address and port lookup."""

from __future__ import annotations

import pytest

from gossamer.model import Service, parse_manifest
from gossamer.model.service import HTTP_PROTOCOLS

from .builders import errors_of, manifest, service


def svc(*ports: tuple[str, int, str]) -> Service:
    s = parse_manifest(service("s", *ports))
    assert isinstance(s, Service)
    return s


def test_protocol_defaults_to_http_and_local_address_to_none() -> None:
    s = parse_manifest(manifest("Service", "s", {"ports": [{"name": "web", "port": 80}]}))
    assert isinstance(s, Service)
    assert s.spec.ports[0].protocol == "http"
    assert s.spec.localAddress is None


@pytest.mark.parametrize(
    ("protocol", "is_http"), [("http", True), ("http2", True), ("grpc", True), ("tcp", False)]
)
def test_protocols(protocol: str, is_http: bool) -> None:
    assert svc(("p", 80, protocol)).spec.ports[0].is_http is is_http
    assert (protocol in HTTP_PROTOCOLS) is is_http


def test_unknown_protocol_lists_the_valid_ones() -> None:
    assert errors_of(service("s", ("p", 80, "udp"))) == [
        "Service default/s: spec.ports[0].protocol: input should be "
        "'http', 'http2', 'grpc' or 'tcp'"
    ]


def test_ports_are_required_and_not_empty() -> None:
    assert errors_of(manifest("Service", "s", {})) == [
        "Service default/s: spec.ports: required field is missing"
    ]
    errors = errors_of(manifest("Service", "s", {"ports": []}))
    assert len(errors) == 1
    assert errors[0].startswith("Service default/s: spec.ports: list should have at least 1 item")


def test_port_name_follows_the_name_rule() -> None:
    (error,) = errors_of(service("s", ("HTTP", 80, "http")))
    assert error.startswith("Service default/s: spec.ports[0].name: 'HTTP' is not a valid name")


def test_port_names_are_unique() -> None:
    assert errors_of(service("s", ("a", 80, "http"), ("a", 81, "tcp"))) == [
        "Service default/s: spec.ports: two ports have name 'a': each must be unique"
    ]


def test_port_numbers_are_unique() -> None:
    assert errors_of(service("s", ("a", 80, "http"), ("b", 80, "tcp"))) == [
        "Service default/s: spec.ports: two ports have port 80: each must be unique"
    ]


def test_explicit_local_address_is_kept() -> None:
    s = parse_manifest(service("s", localAddress="127.0.0.50"))
    assert isinstance(s, Service)
    assert s.spec.localAddress == "127.0.0.50"


def test_port_lookup_by_name() -> None:
    s = svc(("http", 80, "http"), ("admin", 9000, "tcp"))
    assert s.port("admin") is s.spec.ports[1]
    assert s.port("http") is s.spec.ports[0]
    assert s.port("nope") is None


def test_port_lookup_without_a_name_needs_a_single_port() -> None:
    single = svc(("http", 80, "http"))
    assert single.port(None) is single.spec.ports[0]
    assert svc(("http", 80, "http"), ("admin", 9000, "tcp")).port(None) is None


def test_mtls_mode_follows_the_mesh_unless_the_service_overrides_it() -> None:
    plain = parse_manifest(service("s"))
    own = parse_manifest(service("s", mtls={"mode": "strict"}))
    assert isinstance(plain, Service) and isinstance(own, Service)
    assert plain.spec.mtls is None
    assert plain.mtls_mode("permissive") == "permissive"
    assert own.mtls_mode("off") == "strict"
    assert own.to_manifest()["spec"]["mtls"] == {"mode": "strict"}


def test_bad_service_mtls_mode_lists_the_valid_ones() -> None:
    assert errors_of(service("s", mtls={"mode": "STRICT"})) == [
        "Service default/s: spec.mtls.mode: input should be 'strict', 'permissive' or 'off'"
    ]


def test_service_mtls_needs_a_mode() -> None:
    assert errors_of(service("s", mtls={})) == [
        "Service default/s: spec.mtls.mode: required field is missing"
    ]
