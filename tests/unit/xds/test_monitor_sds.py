"""The proxies whose bootstrap says their Envoy gets secrets over SDS (node metadata
``gossamer.sds``) reach the control plane through the xDS monitor, as streams open and close."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossamer.errors import ValidationError
from gossamer.node import SDS_KEY, sds_capable
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.state import StreamState

WEB = ProxyIdentity("sidecar", "default", "web-1", service="web", host="h1")
XDS, ADMIN = ("127.0.0.1", 18000), ("127.0.0.1", 15000)


def test_a_bootstrap_with_an_sds_socket_says_so_in_its_node() -> None:
    with_sds = ads_bootstrap(WEB, XDS, ADMIN, sds_socket=Path("/state/sds.sock")).node
    assert with_sds.metadata.fields[SDS_KEY].bool_value is True
    assert sds_capable(with_sds)
    assert not sds_capable(ads_bootstrap(WEB, XDS, ADMIN).node)


def test_the_sds_key_is_set_only_from_the_socket() -> None:
    with pytest.raises(ValidationError, match=r"metadata\.gossamer\.sds.*sds_socket"):
        ads_bootstrap(WEB, XDS, ADMIN, metadata={SDS_KEY: True})


def test_the_monitor_tells_which_connected_proxies_get_secrets_over_sds() -> None:
    monitor = XdsMonitor()
    told: list[frozenset[str]] = []
    monitor.on_sds_capable(told.append)
    edge = ProxyIdentity("gateway", "default", "edge")
    monitor.opened("s1", WEB, StreamState(delta=False), "sotw", None, sds=True)
    monitor.opened("s2", edge, StreamState(delta=False), "sotw", None)
    assert told == [frozenset({WEB.node_id})]  # the gateway changed nothing
    monitor.closed("s2")
    monitor.closed("s1")
    assert told == [frozenset({WEB.node_id}), frozenset()]
    assert monitor.sds_capable() == frozenset()
