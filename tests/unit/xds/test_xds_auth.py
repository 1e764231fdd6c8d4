"""``check_node``: who may subscribe as which proxy, as a plain function."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gossamer.errors import ConfigError, PermissionDeniedError
from gossamer.types import ProxyIdentity
from gossamer.xds.auth import (
    ANONYMOUS,
    Peer,
    Registration,
    XdsTlsMode,
    check_node,
    xds_tls_mode,
)

START = datetime(2030, 1, 1, tzinfo=UTC)
WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web", host="vm-a")
REGISTERED = {("default", "web-1"): Registration(frozenset({"agent-a"}), "default", "web")}
ISSUED = {0xA1: "agent-a", 0xB1: "agent-b"}


def web_cert(serial: int = 0xA1, *, service: str = "web", namespace: str = "default") -> Peer:
    return Peer(
        f"spiffe://shop.local/ns/{namespace}/sa/{service}", serial, START + timedelta(hours=1)
    )


def check(proxy: ProxyIdentity, peer: Peer, mode: XdsTlsMode = "optional") -> None:
    check_node(
        proxy,
        peer,
        mode=mode,
        registration=lambda p: REGISTERED.get((p.namespace, p.name)),
        holder_of=ISSUED.get,
        recorded_since=START,
    )


def refused(proxy: ProxyIdentity, peer: Peer, mode: XdsTlsMode = "optional") -> str:
    with pytest.raises(PermissionDeniedError) as caught:
        check(proxy, peer, mode)
    message = str(caught.value)
    assert proxy.node_id in message
    return message


def test_the_holder_of_the_registering_agent_with_the_service_is_accepted() -> None:
    check(WEB_1, web_cert())
    check(WEB_1, web_cert(), "required")


def test_anonymous_is_accepted_unless_required() -> None:
    check(WEB_1, ANONYMOUS, "optional")
    check(WEB_1, ANONYMOUS, "off")
    assert "client certificate" in refused(WEB_1, ANONYMOUS, "required")


def test_another_service_namespace_or_holder_is_refused() -> None:
    assert "serves web" in refused(WEB_1, web_cert(service="api"))
    assert "namespace default" in refused(WEB_1, web_cert(namespace="shop"))
    assert "issued to agent agent-b" in refused(WEB_1, web_cert(0xB1))


def test_an_unregistered_node_a_gateway_or_a_lying_node_is_refused() -> None:
    assert "no Workload" in refused(ProxyIdentity("sidecar", "default", "web-9"), web_cert())
    assert "gateway" in refused(ProxyIdentity("gateway", "default", "web"), web_cert())
    liar = ProxyIdentity("sidecar", "default", "web-1", service="api")
    assert "says it serves api" in refused(liar, web_cert())


def test_a_certificate_not_naming_a_workload_is_refused() -> None:
    plane = Peer("spiffe://shop.local/gossamer/control-plane", 0xA1, START)
    assert "not a workload identity" in refused(WEB_1, plane)


def test_an_unrecorded_certificate_is_judged_by_its_identity_only_if_older_than_the_record() -> (
    None
):
    older = Peer("spiffe://shop.local/ns/default/sa/web", 0xC1, START - timedelta(minutes=5))
    verdict = check_node(
        WEB_1,
        older,
        mode="required",
        registration=lambda p: REGISTERED.get((p.namespace, p.name)),
        holder_of=ISSUED.get,
        recorded_since=START,
    )
    assert verdict.holder_unknown
    newer = Peer("spiffe://shop.local/ns/default/sa/web", 0xC1, START + timedelta(minutes=5))
    assert "no record" in refused(WEB_1, newer)


def test_the_mode_flag_names_its_values() -> None:
    assert xds_tls_mode("required") == "required"
    with pytest.raises(ConfigError, match="off, optional, required"):
        xds_tls_mode("on")
