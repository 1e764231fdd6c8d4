"""The traffic filters every HTTP connection manager holds from the start, before its router.

Policy is per-route config in RDS (``typed_per_filter_config``), so applying or changing a
rule's fault never changes a listener: the filters are always there, doing nothing for a
route that says nothing. Order: the local rate limit first (a caller over budget gets 429
whatever else would happen), then the global one (``global_rate_limit``), then fault
injection.

The global rate limit and fault filters are ``disabled`` in the HCM and turned on by the
routes that use them (a route's config for a filter enables it): otherwise Envoy would build
them for every request, and the global one builds its gRPC client each time (measured with
``bench/mtls_features.py``: ~6 % of the mTLS chain's per-request CPU, fault ~1.5 %). The
local rate limit stays on: its buckets are the filter's own config (ECDS), and a route's
config for it would replace them.
"""

from __future__ import annotations

from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.ratelimit.v3 import rate_limit_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.v3 import percent_pb2
from google.protobuf import any_pb2

from gossamer.model.rate_limits import MeshRateLimit
from gossamer.model.route_actions import Fault
from gossamer.translate import global_rate_limit, rate_limit
from gossamer.translate.common import any_of, duration

FAULT_FILTER = "envoy.filters.http.fault"


def fraction(percent: float) -> percent_pb2.FractionalPercent:
    """``percent`` (0..100, to a ten-thousandth) as Envoy's per-million fraction."""
    return percent_pb2.FractionalPercent(
        numerator=round(percent * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
    )


def fault_config(fault: Fault | None = None) -> fault_pb2.HTTPFault:
    """The fault filter's config: none at the HCM, a rule's faults per route."""
    out = fault_pb2.HTTPFault()
    if fault is None:
        return out
    if fault.delay is not None:
        out.delay.CopyFrom(
            common_fault_pb2.FaultDelay(
                fixed_delay=duration(fault.delay.duration),
                percentage=fraction(fault.delay.percent),
            )
        )
    if fault.abort is not None:
        out.abort.CopyFrom(
            fault_pb2.FaultAbort(
                http_status=fault.abort.status, percentage=fraction(fault.abort.percent)
            )
        )
    return out


def per_route(fault: Fault | None, *, global_limit: bool = False) -> dict[str, any_pb2.Any]:
    """A route's ``typed_per_filter_config`` for what the rule says; it also turns on those
    filters (off in the HCM) for the route: the fault filter with the rule's faults, the
    global rate limit (``global_limit``) with the route's own descriptors."""
    out: dict[str, any_pb2.Any] = {}
    if fault is not None:
        out[FAULT_FILTER] = any_of(fault_config(fault))
    if global_limit:
        out[global_rate_limit.GLOBAL_RATE_LIMIT_FILTER] = any_of(rate_limit_pb2.RateLimitPerRoute())
    return out


def traffic_filters(
    stat_prefix: str, policy: MeshRateLimit | None = None
) -> list[hcm_pb2.HttpFilter]:
    """The filters before the router in every HCM (``stat_prefix``: the HCM's); the local
    rate limit's buckets come over ECDS (``rate_limit.extension_config``); the global rate
    limit asks the service as ``policy`` (the Mesh's ``rateLimit``) says."""
    on_demand = [
        global_rate_limit.http_filter(policy or MeshRateLimit()),
        hcm_pb2.HttpFilter(name=FAULT_FILTER, typed_config=any_of(fault_config())),
    ]
    for f in on_demand:
        f.disabled = True  # until a route turns it on (``per_route``)
    return [rate_limit.http_filter(stat_prefix), *on_demand]
