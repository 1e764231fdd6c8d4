"""Chains whose stats access logger carries its fields in a given layout, side by side in
one run of ``bench/telemetry_chain.py`` (``translate.telemetry_stats.Layout``: ``tags``, one
Envoy tag per field; ``joined``, every field in one tag).

The control planes of a chain bench run in the bench's own process, one translator each,
so a configuration is told apart by its Mesh: a trust domain of ``TRUST_DOMAINS`` makes
every proxy of that plane count requests with the logger in that layout, whatever the
translator's default is. Only for the bench: the product has one layout
(``telemetry_stats.request_log``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from envoy.config.accesslog.v3 import accesslog_pb2

from gossamer.model.mesh import Mesh
from gossamer.translate import egress_gateway, proxy, telemetry_stats

#: trust domain -> the layout its plane's proxies use; ``bare``: the latency histogram
#: tagged with its view only, no field of the request (not a layout of the product: it
#: cannot tell edges apart, so its counts are not checked; the floor of what tags cost)
TRUST_DOMAINS: dict[str, telemetry_stats.Layout | Literal["bare"]] = {
    "tags.bench.local": "tags",
    "joined.bench.local": "joined",
    "bare.bench.local": "bare",
}
_default = telemetry_stats.request_log


def request_log(
    mesh: Mesh, log_name: str, tags: Mapping[str, str] | None = None
) -> accesslog_pb2.AccessLog:
    """``telemetry_stats.request_log``, in the layout the Mesh's trust domain names."""
    layout = TRUST_DOMAINS.get(mesh.spec.trustDomain)
    if layout is None or mesh.spec.telemetry.requests != "stats":
        return _default(mesh, log_name, tags)
    if layout == "bare":
        return _bare(log_name)
    return telemetry_stats.access_log(log_name, tags, counters="none", layout=layout)


def _bare(log_name: str) -> accesslog_pb2.AccessLog:
    typed = telemetry_stats.config(log_name, (), counters="none")
    tags = typed.histograms[0].stat.tags
    kept = [t for t in tags if t.name == telemetry_stats.VIEW_TAG]
    del tags[:]
    tags.extend(kept)
    return telemetry_stats.wrapped(typed)


def install() -> None:
    """Every translator of this process asks ``request_log`` above."""
    proxy.request_log = request_log  # type: ignore[attr-defined]
    egress_gateway.request_log = request_log  # type: ignore[attr-defined]
