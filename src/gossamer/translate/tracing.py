"""OpenTelemetry traces of every proxy, sent to the telemetry service (docs/telemetry.md,
"Traces").

With a telemetry service configured and tracing on (``Mesh.spec.tracing.sampling`` above
0), each sidecar HCM (inbound and every outbound dependency) and a gateway's main HCM
carry ``tracing`` with Envoy's OpenTelemetry tracer (``envoy.tracers.opentelemetry``,
OTLP/gRPC to the telemetry cluster, W3C ``traceparent``), its ``service_name`` the proxy's
(``<ns>/<service>`` of a sidecar, ``<ns>/<gateway>``). A gateway spawns an upstream span
per request to a service (``spawn_upstream_span``): its server span is the trace's root,
the upstream span the parent of the callee's inbound span, so one trace reads
gateway -> A -> B. A sidecar's outbound span is already the client side of its hop (no
extra span).

At 0 (the default) no HCM has a tracer: a configured tracer costs a span on every
request, sampled or not (measured: the chain with it at 0 % cost ~1.16x the chain
without, docs/benchmarks.md), which the counting alone does not need. So turning tracing
on or off re-creates the listeners that trace (a drain), like
``Mesh.spec.telemetry.requests``.

How often a trace starts, once on, is set on every route (``Route.tracing.random_sampling``,
RDS), never in the HCM, so changing it between rates above 0 pushes route tables and
drains no listener; the HCM's own rate is a fixed 0 (a request no route matched starts no
trace). The decision is made where a request enters the mesh and travels in its
``x-request-id`` (Envoy marks it there; sidecars keep the id), so later hops follow it
whatever their rate; at the edge the id is replaced, and a client's ``traceparent``
sampled flag forces nothing (measured).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, MutableMapping
from functools import lru_cache, partial

from envoy.config.core.v3 import grpc_service_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from envoy.config.trace.v3 import http_tracer_pb2, opentelemetry_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.v3 import percent_pb2
from google.protobuf import wrappers_pb2

from gossamer.model.mesh import Mesh
from gossamer.translate.common import any_of
from gossamer.translate.hcm import each_hcm
from gossamer.translate.memo import Memo

OPENTELEMETRY_TRACER = "envoy.tracers.opentelemetry"
#: a route's rate is sent per ten thousand (steps of 0.01 %): Envoy draws the decision from
#: the request id modulo 10 000 and compares it with the rate modulo its denominator, so a
#: rate per million traced every request at 1 % and above (measured by
#: bench/telemetry_chain.py; tests/integration/telemetry/test_tracing_rate.py)
_PER_TEN_THOUSAND = 100


def _steps(mesh: Mesh) -> int:
    """``Mesh.spec.tracing.sampling`` in steps of 0.01 % (finer rates are rounded)."""
    return round(mesh.spec.tracing.sampling * _PER_TEN_THOUSAND)


def on(mesh: Mesh) -> bool:
    """Whether the mesh traces at all (at least one step: a rate that rounds to 0 is off):
    only then has an HCM a tracer."""
    return _steps(mesh) > 0


def service_name(kind: str, namespace: str, name: str) -> str:
    """The OTLP ``service.name`` of a proxy: a sidecar's service or a gateway, as
    ``<ns>/<name>`` (the telemetry topology's node ids)."""
    del kind  # (the same form for both; the node id says which)
    return f"{namespace}/{name}"


@lru_cache(maxsize=4096)
def _tracing(cluster: str, name: str, upstream_span: bool) -> hcm_pb2.HttpConnectionManager.Tracing:
    provider = opentelemetry_pb2.OpenTelemetryConfig(
        grpc_service=grpc_service_pb2.GrpcService(
            envoy_grpc=grpc_service_pb2.GrpcService.EnvoyGrpc(cluster_name=cluster)
        ),
        service_name=name,
    )
    return hcm_pb2.HttpConnectionManager.Tracing(
        provider=http_tracer_pb2.Tracing.Http(
            name=OPENTELEMETRY_TRACER, typed_config=any_of(provider)
        ),
        # the routes decide (``sampled_table``); fixed here so the listener never changes
        random_sampling=percent_pb2.Percent(value=0.0),
        spawn_upstream_span=wrappers_pb2.BoolValue(value=upstream_span),
    )


def trace(
    hcm: hcm_pb2.HttpConnectionManager, cluster: str, name: str, *, upstream_span: bool = False
) -> None:
    """Give ``hcm`` the OpenTelemetry tracer exporting to ``cluster`` as ``name``
    (``upstream_span``: a span per upstream request, for a gateway)."""
    hcm.tracing.CopyFrom(_tracing(cluster, name, upstream_span))


def traced_listener(
    listener: listener_pb2.Listener, cluster: str, name: str, *, upstream_span: bool = False
) -> listener_pb2.Listener:
    """A copy of ``listener`` whose every HTTP connection manager traces (``trace``): for
    a listener built elsewhere (a gateway's, an ExternalService's)."""
    return each_hcm(listener, lambda hcm: trace(hcm, cluster, name, upstream_span=upstream_span))


def route_sampling(mesh: Mesh) -> rc_pb2.Tracing:
    """What every route carries: ``Mesh.spec.tracing.sampling`` percent, per ten thousand
    (finer rates are rounded: Envoy cannot sample finer)."""
    numerator = _steps(mesh)
    return rc_pb2.Tracing(
        random_sampling=percent_pb2.FractionalPercent(
            numerator=numerator, denominator=percent_pb2.FractionalPercent.TEN_THOUSAND
        )
    )


def gateway_sampling(mesh: Mesh, telemetry: bool) -> rc_pb2.Tracing | None:
    """What a gateway's routes carry (``route_sampling``) when it traces: with a telemetry
    service and tracing on; else None. Built into its route table as each Route's rules
    are (``SharedPieces.gateway_routes``), not copied in after: at 10,000 hosts a sampled
    copy of each gateway's table was ~100 ms, and lost the encoding gateways share."""
    return route_sampling(mesh) if telemetry and on(mesh) else None


def sample(routes: Iterable[rc_pb2.Route], sampling: rc_pb2.Tracing) -> None:
    """Make every one of ``routes`` sample as ``sampling`` says (in place)."""
    for route in routes:
        route.tracing.random_sampling.CopyFrom(sampling.random_sampling)


def sampled_table(
    table: route_pb2.RouteConfiguration, sampling: rc_pb2.Tracing
) -> route_pb2.RouteConfiguration:
    """A copy of ``table`` whose every route samples as ``sampling`` says."""
    out = route_pb2.RouteConfiguration()
    out.CopyFrom(table)
    for vhost in out.virtual_hosts:
        sample(vhost.routes, sampling)
    return out


def sample_routes(
    memo: Memo,
    routes: MutableMapping[str, route_pb2.RouteConfiguration],
    mesh: Mesh,
    built_sampled: Collection[str] = (),
) -> None:
    """Replace every table in ``routes`` by its sampled copy (memoised per table object
    and rate, so an unchanged table stays the same object); nothing with tracing off.
    ``built_sampled``: tables built with the rate and encoded as they are (a gateway's,
    ``gateway_sampling``), kept: a copy would not be the message their encoding is of."""
    if not on(mesh):
        return
    sampling = route_sampling(mesh)
    numerator = sampling.random_sampling.numerator
    for name, table in routes.items():
        if name in built_sampled:
            continue
        build = partial(sampled_table, table, sampling)
        routes[name] = memo.get("traced-routes", (table, numerator), build)
