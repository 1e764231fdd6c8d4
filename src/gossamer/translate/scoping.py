"""Proxies only see what they may call (docs/ngac.md, "What a sidecar sees").

With enforcement on for a destination service (its authorization mode is ``enforce``), a
caller's sidecar gets that dependency's clusters and real routes only if the caller's
identity holds some right on some attribute of the service (its compiled access lists,
``authz.service_access``). Otherwise the dependency's outbound listener stays as it is (same
address and port, same HCM naming the same route table over RDS) and the route table is one
``direct_response`` 403 saying so, so the app sees a denial rather than a refused
connection; the HCM's ``local_reply_config`` (``translate.hcm``) adds the request id. No
cluster or endpoint set for it is sent, so the caller's Envoy holds nothing about the
service's instances. A grant then only changes a route table and adds clusters (no listener
is modified or drained); a revocation does the reverse.

A TCP dependency the caller may not call keeps its listener too; its TCP proxy names the
service's cluster, which is absent, so Envoy closes each connection at once
(``downstream_cx_no_route``) — TCP has no way to say 403.

Under ``audit`` or ``off`` nothing is scoped: ``audit`` must not change what works.
"""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2

from gossamer.authz.mesh_names import service_target
from gossamer.authz.service_access import AccessState, ServiceAccess
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.workload import Workload
from gossamer.translate.memo import Memo
from gossamer.translate.routes import route_configuration
from gossamer.types import spiffe_id

#: the start of every such denial's reason (a body's ``reason``)
DENIAL = "not allowed by the mesh's access policy"
DENIED_STATUS = 403


def caller_id(snap: ModelSnapshot, w: Workload) -> str:
    """The NGAC user a workload calls as: its service's SPIFFE id."""
    return spiffe_id(snap.mesh.spec.trustDomain, w.metadata.namespace, w.spec.service)


def holders(lists: ServiceAccess) -> frozenset[str]:
    """The callers holding some right on some attribute of the service."""
    return frozenset(user for p in lists.prefixes for user, _ in p.grants)


def scoped(snap: ModelSnapshot, service: Ref) -> bool:
    """Do callers of ``service`` see it only if the graph grants them something (its mode
    is ``enforce``)?"""
    svc = snap.services.get(service)
    if svc is None:
        return False
    return svc.authorization_mode(snap.mesh.spec.authorization.mode) == "enforce"


def may_call(
    memo: Memo, snap: ModelSnapshot, access: AccessState, caller: str, service: Ref
) -> bool:
    """Does ``caller``'s sidecar get ``service``'s clusters and routes?"""
    if not scoped(snap, service):
        return True
    lists = access.of(service)
    # per lists object: an unchanged service keeps its object from round to round
    return caller in memo.get("holders", (lists,), lambda: holders(lists))


def reason(caller: str, service: Ref) -> str:
    return f"{DENIAL}: {caller} holds no right on {service_target(*service)}"


def denied_routes(name: str, caller: str, service: Ref) -> route_pb2.RouteConfiguration:
    """The route table ``name`` of a dependency ``caller`` may not call: every request
    answered 403 by the caller's own sidecar, with the reason."""
    route = rc_pb2.Route(
        name="denied",
        match=rc_pb2.RouteMatch(prefix="/"),
        direct_response=rc_pb2.DirectResponseAction(
            status=DENIED_STATUS,
            body=base_pb2.DataSource(inline_string=reason(caller, service)),
        ),
    )
    return route_configuration(name, [(name, ["*"], [route])])
