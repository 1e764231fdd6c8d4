"""A gateway's join token (``HostScope.gateway``): parsing, what its host may register
(nothing), and who may subscribe to xDS as the gateway (``check_node``), as plain functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gossamer.errors import PermissionDeniedError, ValidationError
from gossamer.model import Workload, parse_manifest
from gossamer.model.internal import AgentSpec, HostScope
from gossamer.registry.scope import fixed_addresses, out_of_scope, parse_scope
from gossamer.types import ProxyIdentity
from gossamer.xds.auth import Peer, Registration, check_node

START = datetime(2030, 1, 1, tzinfo=UTC)
EDGE = ProxyIdentity("gateway", "default", "edge")


def test_a_gateway_scope_is_ns_slash_name_and_name_alone_means_default() -> None:
    assert parse_scope({"gateway": "edge"}).gateway == "default/edge"
    assert parse_scope({"gateway": "shop/edge"}).gateway == "shop/edge"
    assert HostScope(gateway="shop/edge").describe() == "gateway shop/edge"
    assert not HostScope(gateway="default/edge").allows("default", "edge")
    for bad in ("Edge", "a/b/c", "/edge", "shop/", ""):
        with pytest.raises(ValidationError) as caught:
            parse_scope({"gateway": bad})
        assert str(caught.value).startswith("scope.gateway: "), str(caught.value)
        assert "NS/NAME" in str(caught.value)


@pytest.mark.parametrize(
    "extra",
    [
        {"services": ["web"]},
        {"anyService": True},
        {"namespace": "shop"},
        {"anyNamespace": True},
        {"addresses": ["127.0.0.2"]},
    ],
)
def test_a_gateway_scope_takes_nothing_a_service_host_has(extra: dict[str, object]) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_scope({"gateway": "edge", **extra})
    message = str(caught.value)
    assert "gateway" in message and next(iter(extra)) in message


def test_a_scope_that_says_nothing_names_the_gateway_choice_too() -> None:
    with pytest.raises(ValidationError, match="--gateway NS/NAME"):
        parse_scope({})


def _agent(scope: HostScope) -> AgentSpec:
    return AgentSpec(
        host="gw-1",
        credentialSha256="0" * 64,
        joinedAt=START,
        lastSeen=START,
        token="jt-x",
        scope=scope,
    )


def test_a_gateway_host_registers_no_workload() -> None:
    raw = {
        "apiVersion": "gossamer.dev/v1",
        "kind": "Workload",
        "metadata": {"name": "edge-1", "namespace": "default"},
        "spec": {
            "service": "edge",
            "address": "127.0.0.2",
            "ports": [{"port": 9000, "appPort": 8080}],
        },
    }
    w = parse_manifest(raw)
    assert isinstance(w, Workload)
    gateway = _agent(HostScope(gateway="default/edge"))
    (problem,) = out_of_scope([w], gateway)
    assert problem == (
        "Workload default/edge-1: host gw-1's join token is for gateway default/edge, "
        "and a gateway's host registers no Workloads"
    )
    assert fixed_addresses([w], gateway) == []


# -- xDS: who may subscribe as the gateway -------------------------------------------------

GATEWAY_HOSTS = {
    ("gateway", "default", "edge"): Registration(frozenset({"gw-a", "gw-b"}), "default", "edge")
}
WORKLOADS = {
    ("sidecar", "default", "edge-1"): Registration(frozenset({"agent-s"}), "default", "edge")
}
ISSUED = {0xA1: "gw-a", 0xB1: "gw-b", 0xC1: "agent-s", 0xD1: "gw-c"}


def _peer(serial: int, service: str = "edge", namespace: str = "default") -> Peer:
    uri = f"spiffe://shop.local/ns/{namespace}/sa/{service}"
    return Peer(uri, serial, START + timedelta(hours=1))


def _check(proxy: ProxyIdentity, peer: Peer) -> None:
    def registration(p: ProxyIdentity) -> Registration | None:
        return {**GATEWAY_HOSTS, **WORKLOADS}.get((p.kind, p.namespace, p.name))

    check_node(
        proxy,
        peer,
        mode="required",
        registration=registration,
        holder_of=ISSUED.get,
        recorded_since=START,
    )


def _refused(proxy: ProxyIdentity, peer: Peer) -> str:
    with pytest.raises(PermissionDeniedError) as caught:
        _check(proxy, peer)
    return str(caught.value)


def test_each_host_of_a_gateway_subscribes_as_it_with_its_own_certificate() -> None:
    _check(EDGE, _peer(0xA1))
    _check(EDGE, _peer(0xB1))  # a second replica, joined with its own token


def test_a_gateway_certificate_is_refused_for_another_gateway_or_a_sidecar() -> None:
    other = ProxyIdentity("gateway", "default", "admin-edge")
    assert "gateway default/admin-edge" in _refused(other, _peer(0xA1))
    assert "namespace shop" in _refused(ProxyIdentity("gateway", "shop", "edge"), _peer(0xA1))
    sidecar = ProxyIdentity("sidecar", "default", "edge-1")
    assert "issued to agent gw-a" in _refused(sidecar, _peer(0xA1))


def test_a_workload_certificate_of_the_same_name_cannot_subscribe_as_the_gateway() -> None:
    # a service named like the gateway has the same SPIFFE id; its holder is no gateway host
    assert "issued to agent agent-s" in _refused(EDGE, _peer(0xC1))
    assert "issued to agent gw-c" in _refused(EDGE, _peer(0xD1))


def test_a_gateway_nobody_holds_a_token_for_is_refused() -> None:
    lonely = ProxyIdentity("gateway", "default", "lonely")
    assert "no gateway host holds a join token for gateway default/lonely" in _refused(
        lonely, _peer(0xA1, service="lonely")
    )
