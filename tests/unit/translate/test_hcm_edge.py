"""The edge settings of the connection manager (the CVE classes after CVE-2019-9900/9901):
a gateway gets them, a sidecar does not. What each does to traffic is shown against a real
gateway in tests/integration/gateway/test_edge_cves.py."""

from __future__ import annotations

from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from gossamer.model import ModelSnapshot
from gossamer.translate.edge_guard import LUA_FILTER, REPEATABLE, SCRIPT
from gossamer.translate.filters import FAULT_FILTER
from gossamer.translate.global_rate_limit import GLOBAL_RATE_LIMIT_FILTER
from gossamer.translate.hcm import (
    HEADER_MUTATION_FILTER,
    ROUTER_FILTER,
    Edge,
    http_connection_manager,
)
from gossamer.translate.rate_limit import filter_name

HCM = hcm_pb2.HttpConnectionManager


def _hcm(edge: Edge | None) -> HCM:
    return http_connection_manager("l", ModelSnapshot().mesh, rds="r", edge=edge)


def test_edge_routes_host_without_trailing_dot_or_port() -> None:
    hcm = _hcm(Edge())
    assert hcm.strip_trailing_host_dot is True
    assert hcm.strip_any_host_port is True
    assert not hcm.strip_matching_host_port  # one of the two, never both


def test_edge_sanitises_client_cert_details() -> None:
    assert _hcm(Edge()).forward_client_cert_details == HCM.SANITIZE


def test_edge_guard_runs_before_the_router_and_is_a_constant_script() -> None:
    hcm = _hcm(Edge())
    names = [f.name for f in hcm.http_filters]
    # the traffic filters (rate limit, fault) sit between the edge's and the router
    assert names == [
        HEADER_MUTATION_FILTER,
        LUA_FILTER,
        filter_name("l"),
        GLOBAL_RATE_LIMIT_FILTER,
        FAULT_FILTER,
        ROUTER_FILTER,
    ]
    lua = lua_pb2.Lua()
    assert hcm.http_filters[1].typed_config.Unpack(lua)
    assert lua.default_source_code.inline_string == SCRIPT
    for name in REPEATABLE:
        assert f'["{name}"] = true' in SCRIPT and name == name.lower()
    assert "x-user" not in REPEATABLE and "host" not in REPEATABLE


def test_edge_configures_only_the_websocket_upgrade() -> None:
    # Any other Upgrade is refused (403) rather than tunnelled (CVE-2024-23326 class).
    assert [u.upgrade_type for u in _hcm(Edge()).upgrade_configs] == ["websocket"]


def test_inside_the_mesh_none_of_the_edge_settings_apply() -> None:
    hcm = _hcm(None)
    assert LUA_FILTER not in [f.name for f in hcm.http_filters]
    assert not hcm.strip_trailing_host_dot and not hcm.strip_any_host_port
