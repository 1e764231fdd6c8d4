"""The gateway's guard against requests a backend could read differently from Envoy.

Envoy routes a request on one reading of its headers; a backend may read the same bytes
another way. Two cases Envoy 1.40 forwards as they are, and this guard refuses with 400
before any route is taken:

- ``Host`` sent twice: Envoy's HTTP/1 codec merges the lines into one ``:authority``
  (``a,b``), which matches no virtual host but a ``*`` one, and goes upstream merged, where
  a server may take either name (RFC 9112 section 3.2: answer 400);
- any other header sent more than once (CVE-2021-32777 / CVE-2020-25017 class): Envoy's
  header matchers take a request if *any* of the values matches (``x-user: root`` and
  ``x-user: bob`` match ``exact: root``), and both lines reach the backend, which may read
  ``bob``. Only headers RFC 9110 defines as lists (and ``cookie``, which HTTP/2 clients
  split) may repeat; their values are never a routing decision in Gossamer.

The Lua script is a constant, not a template: nothing from the mesh is written into it.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.lua.v3 import lua_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)

from gossamer.translate.common import any_of

LUA_FILTER = "envoy.filters.http.lua"
#: the guard's stats: ``http.<hcm stat prefix>.lua.edge_guard.*`` (errors of the script)
STAT_PREFIX = "edge_guard"

#: headers that may be sent more than once (comma-separated lists in RFC 9110, and cookie)
REPEATABLE = (
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "access-control-request-headers",
    "baggage",
    "cache-control",
    "cookie",
    "forwarded",
    "if-match",
    "if-none-match",
    "pragma",
    "te",
    "tracestate",
    "via",
    "warning",
    "x-forwarded-for",
)

_REPEATABLE_LUA = ", ".join(f'["{name}"] = true' for name in REPEATABLE)

SCRIPT = (
    """
local REPEATABLE = {"""
    + _REPEATABLE_LUA
    + """}

local function refuse(handle, why)
  handle:respond({[":status"] = "400", ["content-type"] = "text/plain"}, why .. "\\n")
end

function envoy_on_request(handle)
  local headers = handle:headers()
  local authority = headers:get(":authority")
  if authority ~= nil and string.find(authority, ",", 1, true) then
    refuse(handle, "Host sent more than once: send one Host header")
    return
  end
  local seen = {}
  for name, _ in pairs(headers) do
    if seen[name] and not REPEATABLE[name] then
      refuse(handle, "header " .. name .. " sent more than once: send it once")
      return
    end
    seen[name] = true
  end
end
"""
)


def edge_guard() -> hcm_pb2.HttpFilter:
    """The HTTP filter refusing repeated ``Host`` and repeated non-list headers with 400."""
    config = lua_pb2.Lua(
        default_source_code=base_pb2.DataSource(inline_string=SCRIPT),
        stat_prefix=STAT_PREFIX,
    )
    return hcm_pb2.HttpFilter(name=LUA_FILTER, typed_config=any_of(config))
