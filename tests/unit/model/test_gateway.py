"""``Gateway``: defaults and field rules."""

from __future__ import annotations

import pytest

from gossamer.model import Gateway, parse_manifest

from .builders import errors_of, gateway, manifest


def test_defaults() -> None:
    g = parse_manifest(gateway("edge", 8080))
    assert isinstance(g, Gateway)
    assert g.spec.address == "127.0.0.1"
    assert g.spec.port == 8080
    assert g.spec.hosts == ["*"]
    assert g.spec.trustedHops == 0


def test_all_fields() -> None:
    g = parse_manifest(
        gateway(
            "edge", 443, address="127.0.0.9", hosts=["shop.example.com", "*.shop.io"], trustedHops=2
        )
    )
    assert isinstance(g, Gateway)
    assert g.spec.address == "127.0.0.9"
    assert g.spec.hosts == ["shop.example.com", "*.shop.io"]
    assert g.spec.trustedHops == 2


def test_a_gateway_may_listen_on_a_non_loopback_address() -> None:
    g = parse_manifest(gateway("edge", address="0.0.0.0"))
    assert isinstance(g, Gateway)
    assert g.spec.address == "0.0.0.0"


def test_port_is_required() -> None:
    assert errors_of(manifest("Gateway", "edge", {})) == [
        "Gateway default/edge: spec.port: required field is missing"
    ]


def test_spec_is_required() -> None:
    assert errors_of(manifest("Gateway", "edge")) == [
        "Gateway default/edge: spec: required field is missing"
    ]


def test_hosts_may_not_be_empty() -> None:
    errors = errors_of(gateway("edge", hosts=[]))
    assert len(errors) == 1
    assert errors[0].startswith("Gateway default/edge: spec.hosts: list should have at least 1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "input should be greater than or equal to 0"),
        (11, "input should be less than or equal to 10"),
    ],
)
def test_trusted_hops_range(value: int, message: str) -> None:
    assert errors_of(gateway("edge", trustedHops=value)) == [
        f"Gateway default/edge: spec.trustedHops: {message}"
    ]


@pytest.mark.parametrize("port", [0, 65536])
def test_port_range(port: int) -> None:
    assert errors_of(gateway("edge", port)) == ["Gateway default/edge: spec.port: must be 1..65535"]
