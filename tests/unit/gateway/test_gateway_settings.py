"""Gateway settings are checked up front; the bootstrap names the gateway and its admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.extensions.resource_monitors.downstream_connections.v3 import (
    downstream_connections_pb2,
)

from gossamer.errors import ValidationError
from gossamer.gateway.settings import (
    CONNECTION_LIMIT_MONITOR,
    GatewaySettings,
    gateway_bootstrap,
)
from gossamer.node import parse_node


def _settings(**kw: object) -> GatewaySettings:
    args: dict[str, object] = {
        "name": "edge",
        "xds_addrs": (("127.0.0.1", 18000),),
        "workdir": Path("/tmp/x"),
    }
    args.update(kw)
    return GatewaySettings(**args)  # type: ignore[arg-type]


def test_bootstrap_names_the_gateway_and_announces_its_admin() -> None:
    s = _settings(namespace="shop", max_connections=1000)
    b = gateway_bootstrap(s, ("127.0.0.1", 9901))
    assert b.node.id == "gateway~shop~edge"
    ident = parse_node(b.node)
    assert (ident.kind, ident.namespace, ident.name) == ("gateway", "shop", "edge")
    assert b.node.metadata.fields["admin"].string_value == "127.0.0.1:9901"
    assert b.admin.address.socket_address.port_value == 9901
    (monitor,) = b.overload_manager.resource_monitors
    assert monitor.name == CONNECTION_LIMIT_MONITOR
    limit = downstream_connections_pb2.DownstreamConnectionsConfig()
    assert monitor.typed_config.Unpack(limit)
    assert limit.max_active_downstream_connections == 1000


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"name": "Edge_1"}, "name"),
        ({"namespace": ""}, "namespace"),
        ({"admin_addr": ("10.0.0.1", 9901)}, "admin_addr"),
        ({"admin_addr": ("127.0.0.1", 70000)}, "admin_addr"),
        ({"xds_addrs": (("127.0.0.1", 0),)}, "xds_addrs[0]"),
        ({"xds_addrs": ()}, "xds_addrs"),
        ({"drain_seconds": -1}, "drain_seconds"),
        ({"concurrency": 0}, "concurrency"),
        ({"max_connections": 0}, "max_connections"),
    ],
)
def test_bad_settings_name_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as e:
        _settings(**kw)
    assert [err.path for err in e.value.errors] == [field]
