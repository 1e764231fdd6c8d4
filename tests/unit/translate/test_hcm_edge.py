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
from gossamer.translate.hcm import (
    HEADER_MUTATION_FILTER,
    ROUTER_FILTER,
    Edge,
    http_connection_manager,
)

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
    assert names == [HEADER_MUTATION_FILTER, LUA_FILTER, ROUTER_FILTER]
    lua = lua_pb2.Lua()
    assert hcm.http_filters[1].typed_config.Unpack(lua)
    assert lua.default_source_code.inline_string == SCRIPT
    for name in REPEATABLE:
        assert f'["{name}"] = true' in SCRIPT and name == name.lower()
    assert "x-user" not in REPEATABLE and "host" not in REPEATABLE


def test_edge_configures_no_upgrade() -> None:
    # An Upgrade is refused (403) rather than tunnelled (CVE-2024-23326 class).
    assert not _hcm(Edge()).upgrade_configs


def test_inside_the_mesh_none_of_the_edge_settings_apply() -> None:
    hcm = _hcm(None)
    assert LUA_FILTER not in [f.name for f in hcm.http_filters]
    assert not hcm.strip_trailing_host_dot and not hcm.strip_any_host_port
