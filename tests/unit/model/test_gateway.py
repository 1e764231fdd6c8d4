"""``Gateway``: defaults and field rules."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.model import Gateway, check_references, parse_manifest

from .builders import errors_of, gateway, manifest, messages, snapshot


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


# -- tls -------------------------------------------------------------------------------------

ONE = {"certificate": "/etc/tls/shop.pem", "privateKey": "/etc/tls/shop.key"}


def _tls(**tls: Any) -> Any:
    g = parse_manifest(gateway("edge", 8443, tls=tls))
    assert isinstance(g, Gateway) and g.spec.tls is not None
    return g.spec.tls


def test_tls_is_off_by_default() -> None:
    g = parse_manifest(gateway("edge"))
    assert isinstance(g, Gateway) and g.spec.tls is None


def test_one_certificate_is_one_entry_for_every_name() -> None:
    tls = _tls(**ONE)
    [entry] = tls.entries()
    assert (entry.hosts, entry.certificate, entry.privateKey) == (
        None,
        "/etc/tls/shop.pem",
        "/etc/tls/shop.key",
    )
    assert (tls.httpsRedirect, tls.httpPort) == (False, None)


def test_several_certificates_by_sni_host_names_lower_cased() -> None:
    tls = _tls(
        certificates=[
            {"hosts": ["Shop.Example", "*.shop.example"], **ONE},
            {"certificate": "/etc/tls/default.pem", "privateKey": "/etc/tls/default.key"},
        ],
        httpsRedirect=True,
        httpPort=8080,
    )
    assert [e.hosts for e in tls.entries()] == [["shop.example", "*.shop.example"], None]
    assert (tls.httpsRedirect, tls.httpPort) == (True, 8080)


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({}, "spec.tls: set certificate and privateKey, or certificates"),
        (
            {"certificate": "/a.pem"},
            "spec.tls: privateKey is missing: certificate and privateKey go together",
        ),
        (
            {"privateKey": "/a.key"},
            "spec.tls: certificate is missing: certificate and privateKey go together",
        ),
        (
            {**ONE, "certificates": [ONE]},
            "spec.tls: set either certificate and privateKey (one certificate) or certificates "
            "(several, chosen by SNI), not both",
        ),
        ({"certificates": []}, "spec.tls.certificates: list should have at least 1 item"),
        (
            {"certificates": [ONE, ONE]},
            "spec.tls: certificates 0 and 1 both leave out hosts; only one certificate may be "
            "the one served to every other name",
        ),
        (
            {"certificates": [{"hosts": ["a.example"], **ONE}, {"hosts": ["A.example"], **ONE}]},
            "spec.tls: host 'a.example' is in certificates 0 and 1; a name chooses one certificate",
        ),
        (
            {**ONE, "httpsRedirect": True},
            "spec.tls: httpsRedirect needs httpPort: the plaintext port that redirects",
        ),
        (
            {**ONE, "httpPort": 8080},
            "spec.tls: httpPort is the plaintext port that redirects to HTTPS: set "
            "httpsRedirect: true or leave httpPort out",
        ),
        (
            {**ONE, "httpsRedirect": True, "httpPort": 8443},
            "spec: tls.httpPort and port are both 8443: the redirecting plaintext listener "
            "needs a port of its own",
        ),
        ({**ONE, "key": "/a"}, "spec.tls.key: unknown field"),
    ],
)
def test_tls_rules(tls: dict[str, Any], message: str) -> None:
    errors = errors_of(gateway("edge", 8443, tls=tls))
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"Gateway default/edge: {message}"), errors[0]


@pytest.mark.parametrize(
    "path", ["tls/shop.pem", "./shop.pem", "/etc/../shop.pem", "/etc/tls/", "//x", "/a\nb"]
)
def test_certificate_files_are_plain_absolute_paths(path: str) -> None:
    [error] = errors_of(gateway("edge", 8443, tls={"certificate": path, "privateKey": "/k"}))
    assert error.startswith(f"Gateway default/edge: spec.tls.certificate: {path!r} is not a")
    assert "absolute path" in error


@pytest.mark.parametrize(
    "host", ["*", "shop.example:443", "-shop.example", "shop..example", "a*.example"]
)
def test_certificate_hosts_are_sni_names(host: str) -> None:
    [error] = errors_of(gateway("edge", 8443, tls={"certificates": [{"hosts": [host], **ONE}]}))
    assert error.startswith("Gateway default/edge: spec.tls.certificates[0].hosts[0]: ")
    assert repr(host) in error


def test_the_redirect_port_is_a_port_like_the_others() -> None:
    tls = {**ONE, "httpsRedirect": True, "httpPort": 8000}
    snap = snapshot(gateway("a", 8443, tls=tls), gateway("b", 8000))
    assert messages(check_references(snap)) == [
        "Gateway default/b: spec.port: 127.0.0.1:8000 is already used by Gateway default/a"
    ]
    snap = snapshot(gateway("a", 8000), gateway("b", 8443, tls=tls))
    assert messages(check_references(snap)) == [
        "Gateway default/b: spec.tls.httpPort: 127.0.0.1:8000 is already used by Gateway default/a"
    ]
