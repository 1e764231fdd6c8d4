"""What one proxy should see: the Envoy resources of a sidecar or a gateway.

Pure: (model snapshot, proxy) -> protobufs. A ``Translator`` memoises the pieces shared by
many proxies (a service's cluster, endpoints and route table: ``translate.shared_pieces``)
across snapshots, and assembles each sidecar's and gateway's resources from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import extension_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2

from gossamer.authz.service_access import NO_ACCESS, AccessState
from gossamer.errors import NotFoundError
from gossamer.layered import Layered, differing, holds
from gossamer.model.mesh import Mesh
from gossamer.model.rate_limits import global_rules
from gossamer.model.route import Route
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.workload import Workload
from gossamer.translate import ext_authz, jwt, names, rbac, scoping, telemetry, tracing
from gossamer.translate.cluster_sets import ClusterSets, unresolved
from gossamer.translate.clusters import inbound_cluster
from gossamer.translate.denial_log import denial_access_log
from gossamer.translate.egress import external_resources
from gossamer.translate.egress_gateway import egress_resources
from gossamer.translate.gateway_listeners import counted_gateway_listeners
from gossamer.translate.global_rate_limit import CLUSTER as RATE_LIMIT_CLUSTER
from gossamer.translate.global_rate_limit import RateLimitService
from gossamer.translate.global_rate_limit import cluster as rate_limit_cluster
from gossamer.translate.hcm import http_connection_manager
from gossamer.translate.inbound_limit import inbound_bucket, limited
from gossamer.translate.listeners import INBOUND, OUTBOUND, http_listener, tcp_listener
from gossamer.translate.local_cluster import local_endpoints
from gossamer.translate.names import ClusterRef
from gossamer.translate.rate_limit import Bucket, buckets, extension_config
from gossamer.translate.routes import (
    cluster_references,
    inbound_routes,
)
from gossamer.translate.shared_pieces import SharedPieces
from gossamer.translate.telemetry_stats import request_log
from gossamer.translate.tls import NO_TLS, TlsState, mode_of, secure_inbound
from gossamer.types import ProxyIdentity

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class ProxyResources:
    """Envoy resources by type, each keyed by its name."""

    clusters: dict[str, cluster_pb2.Cluster] = field(default_factory=dict)
    endpoints: dict[str, endpoint_pb2.ClusterLoadAssignment] = field(default_factory=dict)
    listeners: dict[str, listener_pb2.Listener] = field(default_factory=dict)
    routes: dict[str, route_pb2.RouteConfiguration] = field(default_factory=dict)
    #: ECDS: each HCM's local rate-limit filter config (``rate_limit.extension_config``)
    extension_configs: dict[str, extension_pb2.TypedExtensionConfig] = field(default_factory=dict)
    #: route table name -> the clusters it references, where the translator walked a
    #: table shared by several proxies once (``routes.cluster_references``)
    route_refs: dict[str, frozenset[str]] = field(default_factory=dict)
    #: route table name -> (the table, its deterministic encoding in parts) where the
    #: translator has it: gateways sharing a table share most of it (``GatewayTable``)
    route_encodings: dict[str, tuple[route_pb2.RouteConfiguration, tuple[bytes, ...]]] = field(
        default_factory=dict
    )
    #: the shared clusters and endpoint sets ``clusters`` and ``endpoints`` took whole (a
    #: gateway's): built, versioned and checked once for every proxy taking them
    shared_sets: ClusterSets | None = None

    def missing_references(self) -> list[str]:
        """Names referenced but absent (cf. go-control-plane's ``Consistent``)."""
        out = [
            f"cluster {name} needs endpoints {eds}"
            for name, eds in unresolved(self._unchecked_clusters(), self.endpoints)
        ]
        for name, table in self.routes.items():
            refs = self.route_refs.get(name)
            if refs is None:
                refs = cluster_references(table)
            missing = refs - self.clusters.keys()
            out += [f"route {table.name} needs cluster {c}" for c in sorted(missing)]
        return out

    def _unchecked_clusters(self) -> Iterable[tuple[str, cluster_pb2.Cluster]]:
        """The clusters whose endpoint sets ``missing_references`` must look for: all but
        those of ``shared_sets`` found there (whose sets are all held here)."""
        sets = self.shared_sets
        if sets is None or not holds(self.endpoints, sets.endpoints):
            return self.clusters.items()
        clusters, shared = self.clusters, sets.clusters
        bad = [(n, c) for n in sorted(sets.unresolved) if (c := clusters.get(n)) is shared.get(n)]
        return [*differing(clusters, shared).items(), *bad]


class Translator(SharedPieces):
    """Translates snapshots for proxies, reusing what unchanged inputs produced before."""

    def __init__(self, rate_limit_service: RateLimitService | None = None) -> None:
        super().__init__()
        #: where proxies routing a globally rate-limited rule reach the rate-limit service
        #: (``global_rate_limit``); None: nowhere, such requests fail as the Mesh says
        self.rate_limit_service = rate_limit_service
        #: where sidecars of services deciding end users reach the NGAC decision point
        #: (``ext_authz``); None: nowhere, their requests with a token fail closed (403)
        self.authz_service: ext_authz.AuthzService | None = None
        #: where every proxy sends its access logs (``translate.telemetry``); fixed for the
        #: translator's lifetime, so the loggers never change a listener. None: no logs
        self.telemetry_service: telemetry.TelemetryService | None = None

    def proxy(
        self,
        snap: ModelSnapshot,
        proxy: ProxyIdentity,
        tls: TlsState = NO_TLS,
        access: AccessState = NO_ACCESS,
    ) -> ProxyResources:
        """``proxy``'s resources; ``tls`` says which sidecars take mTLS already,
        ``access`` each service's compiled NGAC access lists (``translate.rbac``)."""
        ref = (proxy.namespace, proxy.name)
        if proxy.kind == "sidecar":
            if ref not in snap.workloads:
                raise NotFoundError(f"Workload {ref[0]}/{ref[1]} does not exist")
            w = snap.workloads[ref]
            out = self.sidecar(snap, w, tls, access)
            deps = [(d.namespace or ref[0], d.service) for d in w.spec.dependencies]
            routes = [r for dep in deps for r in snap.routes_for_service(dep)]
        else:
            if ref not in snap.gateways:
                raise NotFoundError(f"Gateway {ref[0]}/{ref[1]} does not exist")
            out = self.gateway(snap, ref, tls)
            routes = self._gateway_limited(snap, ref)  # (a global rule is a rate limit)
        service = self.rate_limit_service
        if service is not None and global_rules(routes):
            out.clusters[RATE_LIMIT_CLUSTER] = rate_limit_cluster(service, snap.mesh)
        decision_point = self.authz_service
        if decision_point is not None and proxy.kind == "sidecar":
            svc = snap.services[(ref[0], snap.workloads[ref].spec.service)]
            if ext_authz.decides_end_users(snap, svc):
                out.clusters[ext_authz.CLUSTER] = ext_authz.cluster(decision_point, snap.mesh)
        if self.telemetry_service is not None:
            out.clusters[telemetry.CLUSTER] = telemetry.cluster(self.telemetry_service, snap.mesh)
            # the rate, per route (a table kept encoded is built with it)
            tracing.sample_routes(self.memo, out.routes, snap.mesh, out.route_encodings.keys())
        return out

    def _jwt_config(self, out: ProxyResources, snap: ModelSnapshot) -> None:
        """The ECDS resource of every inbound ``jwt_authn`` filter (the Mesh's issuers, with
        the keys fetched for those with a ``jwks.uri``)."""
        issuers = snap.mesh.spec.authentication.jwt
        records = jwt.fetched(snap)
        build = partial(jwt.extension_config, issuers, records)
        config = self.memo.get("jwt-authn", (issuers, records), build)
        out.extension_configs[config.name] = config

    def _add_cluster(
        self,
        snap: ModelSnapshot,
        cr: ClusterRef,
        out: ProxyResources,
        tls: TlsState,
        tls_on: bool,
        zone: str | None,
    ) -> None:
        cluster, endpoints = self.cluster_pair(snap, cr, tls, tls_on, zone)
        out.clusters[cluster.name] = cluster
        out.endpoints[cluster.name] = endpoints

    # -- proxies ---------------------------------------------------------------------------

    def sidecar(
        self,
        snap: ModelSnapshot,
        w: Workload,
        tls: TlsState = NO_TLS,
        access: AccessState = NO_ACCESS,
    ) -> ProxyResources:
        out = ProxyResources()
        mesh = snap.mesh
        ns = w.metadata.namespace
        svc = snap.services[(ns, w.spec.service)]
        # An Envoy that cannot get secrets gets no TLS at all: it would keep warming.
        tls_on = ProxyIdentity("sidecar", *w.ref).node_id in tls.capable
        mode = mode_of(snap, svc.ref) if tls_on else "off"
        zone = w.zone
        local = local_endpoints(self.memo, snap, svc.ref)  # the bootstrap's local cluster
        out.endpoints[local.cluster_name] = local
        for p in w.spec.ports:
            port = svc.port(p.name)
            assert port is not None and p.appPort is not None
            cname = names.inbound_cluster(port.name)
            out.clusters[cname] = inbound_cluster(cname, port, w.spec.appAddress, p.appPort, mesh)
            lname = names.inbound_listener(port.name)
            if port.is_http:
                # In RDS, so a policy change on it never changes (drains) the listener.
                rname = names.inbound_route(port.name)
                # TrafficPolicy.rateLimit: a bucket in the filter, emitted by every route
                bucket = inbound_bucket(snap, w)
                table = self.memo.get(
                    "inbound-routes", (rname, cname), partial(inbound_routes, rname, cname)
                )
                # NGAC: a route per path prefix, each with its access list (RBACPerRoute)
                table = rbac.inbound_table(self.memo, snap, svc, table, access)
                # end users (JWT) decided by the decision point, for enforcing services
                table = ext_authz.inbound_table(self.memo, snap, svc, table)
                out.routes[rname] = limited(table, bucket)
                self._local_limits(out, lname, (bucket,) if bucket else ())
                hcm = http_connection_manager(lname, mesh, rds=rname)
                hcm.http_filters.insert(0, rbac.http_filter())  # from the start, in every mode
                # then the token check and the decision point (on for routes that use them)
                hcm.http_filters.insert(1, jwt.http_filter())
                hcm.http_filters.insert(2, ext_authz.http_filter())
                if tls_on:  # what RBAC denies (or would) goes to the host's agent
                    hcm.access_log.append(denial_access_log())
                if self.telemetry_service is not None:  # every request, to the telemetry
                    hcm.access_log.append(request_log(mesh, telemetry.INBOUND))
                    if tracing.on(mesh):
                        tracing.trace(hcm, telemetry.CLUSTER, f"{ns}/{w.spec.service}")
                self._jwt_config(out, snap)
                listener = http_listener(lname, w.spec.address, p.port, hcm, INBOUND)
            else:
                listener = tcp_listener(
                    lname, w.spec.address, p.port, cname, mesh.spec.defaults.idleTimeout, INBOUND
                )
            enforced = w.ref in tls.enforced
            secure_inbound(listener, mode, mesh.spec.trustDomain, enforced=enforced)
            out.listeners[lname] = listener
        for dep in w.spec.dependencies:
            ref = (dep.namespace or ns, dep.service)
            if ref in snap.external_services and ref not in snap.services:
                # egress: an ExternalService (names are shared, collisions refused)
                cluster, table, listener = external_resources(
                    self.memo, snap, ref, dep, tls, tls_on
                )
                out.clusters[cluster.name] = cluster
                if table is not None:
                    out.routes[table.name] = table
                    held = buckets(snap.routes_for_service(ref))
                    self._local_limits(out, listener.name, held)
                if self.telemetry_service is not None and table is not None:
                    via = snap.external_services[ref].gateway  # the hop ends at the gateway
                    tags = telemetry.outbound_tags(ref, external=True, via=via)
                    log = request_log(mesh, telemetry.OUTBOUND, tags)
                    build_logged = partial(telemetry.logging, listener, log)
                    listener = self.memo.get("egress-logged", (listener, ref, log), build_logged)
                    if tracing.on(mesh):
                        caller = f"{ns}/{w.spec.service}"
                        build_traced = partial(
                            tracing.traced_listener, listener, telemetry.CLUSTER, caller
                        )
                        key = (listener, caller)
                        listener = self.memo.get("egress-traced", key, build_traced)
                out.listeners[listener.name] = listener
                continue
            port = snap.service_port(ref, dep.port)
            assert port is not None
            sp = (ref, port.name)
            address = dep.localAddress or snap.local_addresses[ref]
            bind = dep.localPort or port.port
            lname = names.outbound_listener(address, bind)
            # NGAC: no clusters or routes of an enforcing service it may not call, a 403
            allowed = scoping.may_call(self.memo, snap, access, scoping.caller_id(snap, w), ref)
            if port.is_http:
                table, used = self.service_routes(snap, sp)
                if not allowed:
                    table, used = self._denied_routes(snap, w, ref, table.name), frozenset()
                out.routes[table.name] = table
                for u in sorted(used):
                    self._add_cluster(snap, u, out, tls, tls_on, zone)
                self._local_limits(out, lname, buckets(snap.routes_for_service(ref)))
                # (one per dependency, shared by its callers, one per caller service when
                # traced: at 1,000 sidecars x 20 a full round spent most of its time
                # rebuilding these unchanged)
                logged = self.telemetry_service is not None
                traced_as = f"{ns}/{w.spec.service}" if logged and tracing.on(mesh) else None
                inputs = (lname, mesh, table.name, address, bind, ref, logged, traced_as)
                build = partial(_outbound_http, *inputs)
                out.listeners[lname] = self.memo.get("outbound-http", inputs, build)
            else:
                if allowed:
                    self._add_cluster(snap, (ref, port.name, ()), out, tls, tls_on, zone)
                out.listeners[lname] = tcp_listener(
                    lname,
                    address,
                    bind,
                    names.outbound_cluster(*sp),
                    mesh.spec.defaults.idleTimeout,
                    OUTBOUND,
                )
        return out

    def _denied_routes(
        self, snap: ModelSnapshot, w: Workload, ref: Ref, name: str
    ) -> route_pb2.RouteConfiguration:
        caller = scoping.caller_id(snap, w)
        build = partial(scoping.denied_routes, name, caller, ref)
        return self.memo.get("denied-routes", (name, caller, ref), build)

    def gateway(self, snap: ModelSnapshot, ref: Ref, tls: TlsState = NO_TLS) -> ProxyResources:
        gw = snap.gateways[ref]
        tls_on = ProxyIdentity("gateway", *ref).node_id in tls.capable
        mesh = snap.mesh
        rname = names.gateway_route(ref)
        sampling = tracing.gateway_sampling(mesh, self.telemetry_service is not None)
        found = self.gateway_routes(snap, ref, sampling)
        used, table = found.used, found.table()
        sets = self.cluster_sets(snap, used, tls, tls_on, gw.spec.zone)
        out = ProxyResources(Layered(sets.clusters), Layered(sets.endpoints), shared_sets=sets)
        out.routes[rname] = table
        out.route_refs[rname] = found.refs
        out.route_encodings[rname] = (table, found.encoded)
        counted = self.telemetry_service is not None
        listeners = self.memo.get(
            "gateway-listeners",
            (ref, gw, mesh, counted),
            partial(counted_gateway_listeners, ref, gw, mesh, counted),
        )
        out.listeners.update(listeners)
        held = buckets(self._gateway_limited(snap, ref))
        for lname in listeners:  # (the redirecting listener routes no rule)
            self._local_limits(out, lname, held if lname == names.gateway_listener(ref) else ())
        # egress: a listener per ExternalService routed through this gateway (``via``)
        for cluster, listener in egress_resources(self.memo, snap, ref, tls, counted=counted):
            out.clusters[cluster.name] = cluster
            out.listeners[listener.name] = listener
            self._local_limits(out, listener.name, ())
        return out

    def _gateway_limited(self, snap: ModelSnapshot, ref: Ref) -> list[Route]:
        """Gateway ``ref``'s Routes with a rate-limited rule."""
        limited = self.route_index.limited(snap)
        return [r for r in limited if r.metadata.namespace == ref[0] and ref[1] in r.spec.gateways]

    def _local_limits(
        self, out: ProxyResources, stat_prefix: str, held: tuple[Bucket, ...]
    ) -> None:
        """The ECDS resource of the local rate-limit filter of the HCM ``stat_prefix``."""
        # (by value: buckets are made anew per translation; an unchanged config stays the
        # same object, serialised once)
        key = tuple((b.rule, b.requests, b.per // _MICROSECOND, b.shared) for b in held)
        config = self.memo.get(
            "local-limits", (stat_prefix, key), partial(extension_config, stat_prefix, held)
        )
        out.extension_configs[config.name] = config


def _outbound_http(
    lname: str,
    mesh: Mesh,
    rds: str,
    address: str,
    bind: int,
    ref: Ref,
    logged: bool,
    traced_as: str | None,
) -> listener_pb2.Listener:
    """A sidecar's outbound listener to ``ref`` (``logged``: telemetry is on, every request
    counted, ``Mesh.spec.telemetry``; ``traced_as``: the calling service, whose traces its
    spans join)."""
    hcm = http_connection_manager(lname, mesh, rds=rds)
    if logged:
        tags = telemetry.outbound_tags(ref)
        hcm.access_log.append(request_log(mesh, telemetry.OUTBOUND, tags))
    if traced_as is not None:
        tracing.trace(hcm, telemetry.CLUSTER, traced_as)
    return http_listener(lname, address, bind, hcm, OUTBOUND)
