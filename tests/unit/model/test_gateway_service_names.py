"""A Gateway and a Service of the same namespace and name would share one SPIFFE id
(``spiffe://<td>/ns/<ns>/sa/<name>``): callers of the service would accept the gateway's
certificate, and the other way round. Refused at apply time, naming both and what to
rename, whichever of the two came first."""

from __future__ import annotations

from gossamer.model import check_references

from .builders import gateway, manifest, messages, service, snapshot

EXPECTED = (
    "Gateway shop/edge: metadata.name: Service shop/edge has the same namespace and name, "
    "so both would be spiffe://shop.local/ns/shop/sa/edge (callers of the service would "
    "accept the gateway's certificate): rename the Gateway, or the Service"
)


def test_a_gateway_named_like_a_service_is_refused() -> None:
    mesh = manifest("Mesh", "default", {"trustDomain": "shop.local"})
    for order in (
        (service("edge", namespace="shop"), gateway("edge", namespace="shop")),
        (gateway("edge", namespace="shop"), service("edge", namespace="shop")),
    ):
        assert messages(check_references(snapshot(mesh, *order))) == [EXPECTED]


def test_the_same_name_in_another_namespace_is_fine() -> None:
    assert check_references(snapshot(service("edge"), gateway("edge", namespace="shop"))) == []
    assert check_references(snapshot(service("web"), gateway("edge"))) == []
