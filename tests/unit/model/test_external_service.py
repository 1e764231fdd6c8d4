"""``ExternalService``: field rules (hosts or addresses, protocol, tls only with https, a CA
that parses, one server name for https), and the checks across resources (names shared with
Services, dependencies, Routes and TrafficPolicies for it, caFile never stored)."""

from __future__ import annotations

import datetime
import ipaddress
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gossamer.model import ExternalService, check_references, parse_manifest
from gossamer.model.snapshot import VIP_NET
from gossamer.types import Manifest

from .builders import errors_of, manifest, messages, route, service, snapshot, workload

WHERE = "ExternalService default/api"


def external(name: str = "api", **spec: Any) -> Manifest:
    body = {"hosts": ["api.example.com"], "port": 443, "protocol": "https", **spec}
    return manifest("ExternalService", name, {k: v for k, v in body.items() if v is not None})


def ca_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_shapes_that_parse() -> None:
    e = parse_manifest(external(hosts=["API.Example.com."]))
    assert isinstance(e, ExternalService)
    assert e.spec.hosts == ["api.example.com"] and e.spec.server_name == "api.example.com"
    pem = ca_pem()
    by_ip = parse_manifest(
        external(hosts=None, addresses=["203.0.113.7"], tls={"sni": "api.example.com", "ca": pem})
    )
    assert isinstance(by_ip, ExternalService) and by_ip.spec.server_name == "api.example.com"
    for protocol in ("http", "tcp", "tls"):
        parse_manifest(external(protocol=protocol, port=8080))


def test_field_errors_name_the_field() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"hosts": None}, "give exactly one of hosts"),
        ({"addresses": ["203.0.113.7"]}, "give exactly one of hosts"),
        ({"hosts": ["*.example.com"]}, "spec.hosts[0]: '*.example.com' is not a host name"),
        ({"hosts": ["10.0.0.1"]}, "is an IP address: list it under addresses"),
        ({"hosts": ["a.com", "a.com"]}, "'a.com' is listed twice"),
        ({"hosts": None, "addresses": ["nope"]}, "spec.addresses[0]"),
        ({"port": 0}, "spec.port"),
        ({"protocol": "grpc"}, "spec.protocol"),
        ({"protocol": "tls", "tls": {"sni": "a.com"}}, "tls is for protocol https"),
        ({"hosts": ["a.com", "b.com"]}, "set tls.sni (required with addresses or several"),
        ({"hosts": None, "addresses": ["203.0.113.7"]}, "set tls.sni"),
        ({"tls": {"ca": "hello"}}, "spec.tls.ca: is not PEM"),
        (
            {"tls": {"ca": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}},
            "does not parse",
        ),
        ({"tls": {"ca": ca_pem(), "caFile": "ca.pem"}}, "give ca (PEM) or caFile, not both"),
        ({"localAddress": "10.0.0.1"}, "spec.localAddress"),
    ]
    for spec, expected in cases:
        errors = errors_of(external(**spec), "e.yaml")
        assert any(expected in e for e in errors), (spec, errors)
        assert all(e.startswith(f"e.yaml: {WHERE}: spec") for e in errors), errors


def web(**dep: Any) -> Manifest:
    return workload("web-1", "web", dependencies=[{"service": "api", **dep}])


def test_a_workload_depends_on_it_at_a_stable_local_address() -> None:
    snap = snapshot(service("web"), external(), web())
    assert check_references(snap) == []
    address = snap.local_addresses[("default", "api")]
    assert ipaddress.ip_address(address) in VIP_NET
    # the address stays when another service is added later
    more = snap.with_changes([parse_manifest(service("zzz"))])
    assert more.local_addresses[("default", "api")] == address


def test_cross_resource_errors() -> None:
    snap = snapshot(
        service("web"),
        service("api"),  # the same name as the external service
        external(),
        web(port="http"),
    )
    errors = messages(check_references(snap))
    assert (
        f"{WHERE}: metadata.name: Service default/api has this name: Services and "
        "ExternalServices share names (a dependency names either): rename one"
    ) in errors


def test_a_dependency_names_no_port_and_binds_are_distinct() -> None:
    snap = snapshot(
        service("web"),
        external(),
        workload("web-1", "web", dependencies=[{"service": "api", "port": "http"}]),
    )
    (error,) = messages(check_references(snap))
    assert "spec.dependencies[0].port: ExternalService default/api has one port (443)" in error
    clash = snapshot(
        service("web"),
        external(localAddress="127.64.0.9"),
        external("other", localAddress="127.64.0.9"),
    )
    (error,) = messages(check_references(clash))
    assert "127.64.0.9:443 is already the address of ExternalService default/api" in error


def test_routes_for_an_external_service_send_only_to_it() -> None:
    ok = route("r", service="api", rules=[{"destinations": [{"service": "api"}], "timeout": "2s"}])
    assert check_references(snapshot(service("web"), external(), ok)) == []
    other = route("r", service="api", rules=[{"destinations": [{"service": "web"}]}])
    (error,) = messages(check_references(snapshot(service("web"), external(), other)))
    assert "spec.rules[0].destinations[0].service: a Route for ExternalService api sends" in error
    to_it = route("r", service="web", rules=[{"destinations": [{"service": "api"}]}])
    (error,) = messages(check_references(snapshot(service("web"), external(), to_it)))
    assert "api is an ExternalService: only a Route for it (service: api) sends" in error
    tcp = route("r", service="api", rules=[{"destinations": [{"service": "api"}]}])
    (error,) = messages(check_references(snapshot(external(protocol="tcp"), tcp)))
    assert "spec.service: routes are HTTP rules, but ExternalService default/api is tcp" in error


def test_traffic_policies_for_an_external_service() -> None:
    ok = manifest(
        "TrafficPolicy",
        "p",
        {"service": "api", "circuitBreaker": {"maxRequests": 5}, "outlierDetection": {}},
    )
    assert check_references(snapshot(external(), ok)) == []
    bad = manifest(
        "TrafficPolicy",
        "p",
        {"service": "api", "subset": {"v": "1"}, "rateLimit": {"requests": 1, "per": "1s"}},
    )
    errors = messages(check_references(snapshot(external(), bad)))
    assert any("spec.subset: an ExternalService has no subsets" in e for e in errors), errors
    assert any("spec.rateLimit: rateLimit is enforced by a service's own" in e for e in errors)


def test_ca_file_is_never_stored() -> None:
    snap = snapshot(external(tls={"caFile": "ca.pem"}))
    (error,) = messages(check_references(snap))
    assert "spec.tls.caFile: caFile is read by gossamer apply" in error
