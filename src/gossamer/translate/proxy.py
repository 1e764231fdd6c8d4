"""What one proxy should see: the Envoy resources of a sidecar or a gateway.

Pure: (model snapshot, proxy) -> protobufs. A ``Translator`` memoises the pieces shared by
many proxies (a service's cluster, endpoints and route table) across snapshots.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2

from gossamer.errors import NotFoundError
from gossamer.model.route import Destination, Route, Rule
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.workload import Workload
from gossamer.translate import names
from gossamer.translate.clusters import inbound_cluster, outbound_cluster
from gossamer.translate.endpoints import in_subset, load_assignment
from gossamer.translate.gateway_listeners import gateway_listeners
from gossamer.translate.hcm import http_connection_manager
from gossamer.translate.listeners import INBOUND, OUTBOUND, http_listener, tcp_listener
from gossamer.translate.memo import Memo
from gossamer.translate.names import Subset, subset_of
from gossamer.translate.routes import (
    ClusterOf,
    default_route,
    route_configuration,
    routes_for_rules,
)
from gossamer.translate.tls import NO_TLS, TlsState, add_mtls_match, mode_of, secure_inbound
from gossamer.types import ProxyIdentity

ServicePortRef = tuple[Ref, str]  # (service, port name)
#: (service, port name, subset): one outbound cluster and its endpoint set
ClusterRef = tuple[Ref, str, Subset]


@dataclass(frozen=True)
class ProxyResources:
    """Envoy resources by type, each keyed by its name."""

    clusters: dict[str, cluster_pb2.Cluster] = field(default_factory=dict)
    endpoints: dict[str, endpoint_pb2.ClusterLoadAssignment] = field(default_factory=dict)
    listeners: dict[str, listener_pb2.Listener] = field(default_factory=dict)
    routes: dict[str, route_pb2.RouteConfiguration] = field(default_factory=dict)

    def missing_references(self) -> list[str]:
        """Names referenced but absent (cf. go-control-plane's ``Consistent``)."""
        out: list[str] = []
        for name, cluster in self.clusters.items():
            if cluster.HasField("eds_cluster_config"):
                eds = cluster.eds_cluster_config.service_name or name
                if eds not in self.endpoints:
                    out.append(f"cluster {name} needs endpoints {eds}")
        for table in self.routes.values():
            for vh in table.virtual_hosts:
                for route in vh.routes:
                    action = route.route
                    refs = [action.cluster] if action.cluster else []
                    refs += [c.name for c in action.weighted_clusters.clusters]
                    out += [
                        f"route {table.name} needs cluster {c}"
                        for c in refs
                        if c not in self.clusters
                    ]
        return out


class Translator:
    """Translates snapshots for proxies, reusing what unchanged inputs produced before."""

    def __init__(self) -> None:
        self.memo = Memo()
        self._subsets: tuple[object, dict[Ref, tuple[Subset, ...]]] | None = None
        self._per_snapshot: tuple[object, object, dict[tuple[Any, ...], tuple[Any, Any]]] = (
            None,
            None,
            {},
        )

    def prune(self) -> None:
        """End of a round of translations: forget what this round did not use."""
        self._per_snapshot = (None, None, {})
        self.memo.prune()

    def proxy(
        self, snap: ModelSnapshot, proxy: ProxyIdentity, tls: TlsState = NO_TLS
    ) -> ProxyResources:
        """``proxy``'s resources; ``tls`` says which sidecars take mTLS already."""
        ref = (proxy.namespace, proxy.name)
        if proxy.kind == "sidecar":
            if ref not in snap.workloads:
                raise NotFoundError(f"Workload {ref[0]}/{ref[1]} does not exist")
            return self.sidecar(snap, snap.workloads[ref], tls)
        if ref not in snap.gateways:
            raise NotFoundError(f"Gateway {ref[0]}/{ref[1]} does not exist")
        return self.gateway(snap, ref, tls)

    # -- pieces shared by every proxy that calls a service port ----------------------------

    def subsets(self, snap: ModelSnapshot, service: Ref) -> tuple[Subset, ...]:
        """The subsets of ``service`` some Route (east-west or gateway) sends to."""

        def build() -> dict[Ref, tuple[Subset, ...]]:
            found: dict[Ref, set[Subset]] = defaultdict(set)
            for (ns, _), route in snap.routes.items():
                for rule in route.spec.rules:
                    for d in rule.destinations:
                        if d.subset:
                            found[(d.namespace or ns, d.service)].add(subset_of(d.subset))
            return {ref: tuple(sorted(k)) for ref, k in found.items()}

        # Once per Route generation, not per service.
        if self._subsets is None or self._subsets[0] is not snap.generation("Route"):
            self._subsets = (snap.generation("Route"), build())
        return self._subsets[1].get(service, ())

    def _resolve(
        self, d: Destination, namespace: str, snap: ModelSnapshot, same: ServicePortRef | None
    ) -> ServicePortRef:
        ref = (d.namespace or namespace, d.service)
        if d.port is None and same is not None and ref == same[0]:
            return same
        port = snap.service_port(ref, d.port)
        assert port is not None, "references are checked before a snapshot is translated"
        return (ref, port.name)

    def cluster(
        self, snap: ModelSnapshot, cr: ClusterRef, tls_on: bool = False
    ) -> cluster_pb2.Cluster:
        """A service port's (or subset's) cluster; ``tls_on``: for a proxy that can send
        mTLS (it sends it to the endpoints EDS marks)."""
        ref, port_name, subset = cr
        svc = snap.services[ref]
        port = svc.port(port_name)
        assert port is not None
        # Protocol follows the whole service (all sidecars or none), subsets included.
        sidecars = all(w.spec.sidecar for w in snap.workloads_of(ref))

        def build() -> cluster_pb2.Cluster:
            name = names.outbound_cluster(ref, port_name, subset)
            cluster = outbound_cluster(name, port, snap.mesh, sidecars=sidecars)
            # Sidecars of a service not ``off`` may be sent mTLS (once EDS marks them).
            if sidecars and mode_of(snap, ref) != "off":
                add_mtls_match(cluster, snap, ref, http2=port.is_http)
            return cluster

        if not tls_on:
            return self.memo.get(
                "cluster",
                (svc, port_name, subset, snap.mesh, sidecars),
                lambda: outbound_cluster(
                    names.outbound_cluster(ref, port_name, subset),
                    port,
                    snap.mesh,
                    sidecars=sidecars,
                ),
            )
        return self.memo.get("mtls-cluster", (svc, port_name, subset, snap.mesh, sidecars), build)

    def endpoints(
        self, snap: ModelSnapshot, cr: ClusterRef, tls: TlsState = NO_TLS
    ) -> endpoint_pb2.ClusterLoadAssignment:
        ref, port_name, subset = cr
        svc = snap.services[ref]
        workloads = snap.workloads_of(ref)
        # Marked for mTLS: sidecars known to take it, unless the service is ``off``.
        marked = (
            frozenset(
                w.ref
                for w in workloads
                if w.spec.sidecar and w.ref in tls.ready and mode_of(snap, ref) != "off"
            )
            if tls.ready
            else frozenset()
        )

        def build() -> endpoint_pb2.ClusterLoadAssignment:
            return load_assignment(
                names.outbound_cluster(ref, port_name, subset),
                port_name,
                [w for w in workloads if in_subset(w, subset)],
                single_port=len(svc.spec.ports) == 1,
                marked=marked,
            )

        inputs = (svc, port_name, subset, workloads, tuple(sorted(marked)))
        return self.memo.get("endpoints", inputs, build)

    def _cluster_of(
        self, snap: ModelSnapshot, same: ServicePortRef | None, used: set[ClusterRef]
    ) -> ClusterOf:
        def cluster_of(d: Destination, namespace: str) -> tuple[str, bool]:
            ref, port_name = self._resolve(d, namespace, snap, same)
            cr = (ref, port_name, subset_of(d.subset))
            used.add(cr)
            port = snap.service_port(ref, port_name)
            return names.outbound_cluster(*cr), port is not None and port.protocol == "grpc"

        return cluster_of

    def service_routes(
        self, snap: ModelSnapshot, sp: ServicePortRef
    ) -> tuple[route_pb2.RouteConfiguration, frozenset[ClusterRef]]:
        """The route table callers of a service port share, and the clusters it uses."""
        ref, port_name = sp
        routes = snap.routes_for_service(ref)
        port = snap.service_port(ref, port_name)
        assert port is not None

        def build() -> tuple[route_pb2.RouteConfiguration, frozenset[ClusterRef]]:
            used: set[ClusterRef] = {(sp[0], sp[1], ())}
            rules: list[tuple[Rule, str]] = [
                (rule, r.metadata.namespace) for r in routes for rule in r.spec.rules
            ]
            table = routes_for_rules(rules, self._cluster_of(snap, sp, used), snap.mesh)
            grpc = port.protocol == "grpc"
            timeout = snap.mesh.spec.defaults.requestTimeout if not grpc else None
            table.append(
                default_route(
                    names.outbound_cluster(*sp),
                    timeout,
                    grpc=grpc,
                    retries=snap.mesh.spec.defaults.retries,
                )
            )
            name = names.outbound_route(*sp)
            return route_configuration(name, [(name, ["*"], table)]), frozenset(used)

        targets = tuple(
            snap.services.get((d.namespace or r.metadata.namespace, d.service))
            for r in routes
            for rule in r.spec.rules
            for d in rule.destinations
        )
        return self.memo.get("service-routes", (routes, sp, snap.mesh, targets), build)

    def _add_cluster(
        self,
        snap: ModelSnapshot,
        cr: ClusterRef,
        out: ProxyResources,
        tls: TlsState,
        tls_on: bool,
    ) -> None:
        # Many proxies of one snapshot share clusters: look each up once per snapshot.
        if self._per_snapshot[0] is not snap.resources or self._per_snapshot[1] is not tls:
            self._per_snapshot = (snap.resources, tls, {})
        done = self._per_snapshot[2]
        key = (*cr, tls_on)
        pair = done.get(key)
        if pair is None:
            pair = done[key] = (self.cluster(snap, cr, tls_on), self.endpoints(snap, cr, tls))
        out.clusters[pair[0].name] = pair[0]
        out.endpoints[pair[0].name] = pair[1]

    # -- proxies ---------------------------------------------------------------------------

    def sidecar(self, snap: ModelSnapshot, w: Workload, tls: TlsState = NO_TLS) -> ProxyResources:
        out = ProxyResources()
        mesh = snap.mesh
        ns = w.metadata.namespace
        svc = snap.services[(ns, w.spec.service)]
        # An Envoy that cannot get secrets gets no TLS at all: it would keep warming.
        tls_on = ProxyIdentity("sidecar", *w.ref).node_id in tls.capable
        mode = mode_of(snap, svc.ref) if tls_on else "off"
        for p in w.spec.ports:
            port = svc.port(p.name)
            assert port is not None and p.appPort is not None
            cname = names.inbound_cluster(port.name)
            out.clusters[cname] = inbound_cluster(cname, port, w.spec.appAddress, p.appPort, mesh)
            lname = names.inbound_listener(port.name)
            if port.is_http:
                inbound = route_configuration(
                    lname, [(lname, ["*"], [default_route(cname, None, grpc=False)])]
                )
                hcm = http_connection_manager(lname, mesh, route_config=inbound)
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
            port = snap.service_port(ref, dep.port)
            assert port is not None
            sp = (ref, port.name)
            address = dep.localAddress or snap.local_addresses[ref]
            bind = dep.localPort or port.port
            lname = names.outbound_listener(address, bind)
            if port.is_http:
                table, used = self.service_routes(snap, sp)
                out.routes[table.name] = table
                for u in sorted(used):
                    self._add_cluster(snap, u, out, tls, tls_on)
                hcm = http_connection_manager(lname, mesh, rds=table.name)
                out.listeners[lname] = http_listener(lname, address, bind, hcm, OUTBOUND)
            else:
                self._add_cluster(snap, (ref, port.name, ()), out, tls, tls_on)
                out.listeners[lname] = tcp_listener(
                    lname,
                    address,
                    bind,
                    names.outbound_cluster(*sp),
                    mesh.spec.defaults.idleTimeout,
                    OUTBOUND,
                )
        return out

    def gateway_routes(
        self, snap: ModelSnapshot, ref: Ref
    ) -> tuple[route_pb2.RouteConfiguration, frozenset[ClusterRef]]:
        """A gateway's route table (virtual hosts by domain) and the clusters it uses."""
        gw = snap.gateways[ref]

        def rules_of(r: Route) -> tuple[list[rc_pb2.Route], frozenset[ClusterRef]]:
            # One Route's Envoy routes, shared by every gateway and domain it serves.
            def build_rules() -> tuple[list[rc_pb2.Route], frozenset[ClusterRef]]:
                used: set[ClusterRef] = set()
                rules = [(rule, r.metadata.namespace) for rule in r.spec.rules]
                built = routes_for_rules(rules, self._cluster_of(snap, None, used), snap.mesh)
                return built, frozenset(used)

            inputs = (r, snap.generation("Service"), snap.mesh)
            return self.memo.get("gateway-route-rules", inputs, build_rules)

        def build() -> tuple[route_pb2.RouteConfiguration, frozenset[ClusterRef]]:
            routes = snap.routes_for_gateway(ref)

            def build_vhosts() -> tuple[route_pb2.RouteConfiguration, frozenset[ClusterRef]]:
                # Gateways serving the same routes share this table, copied under their names.
                used: set[ClusterRef] = set()
                by_domain: dict[str, list[rc_pb2.Route]] = defaultdict(list)
                for r in routes:
                    built, route_used = rules_of(r)
                    used |= route_used
                    hosts = gw.spec.hosts if r.spec.hosts == ["*"] else r.spec.hosts
                    for host in hosts:
                        by_domain[host].extend(built)
                vhosts = [(d, [d], table) for d, table in sorted(by_domain.items())]
                return route_configuration("", vhosts), frozenset(used)

            inputs = (tuple(gw.spec.hosts), routes, snap.generation("Service"), snap.mesh)
            shared, used = self.memo.get("gateway-vhosts", inputs, build_vhosts)
            table = route_pb2.RouteConfiguration()
            table.CopyFrom(shared)
            table.name = names.gateway_route(ref)
            return table, used

        # Keyed by generations: any Route or Service change rebuilds gateway tables, but
        # the key costs nothing to compute whatever the number of routes.
        inputs = (gw, snap.generation("Route"), snap.generation("Service"), snap.mesh)
        return self.memo.get("gateway-routes", inputs, build)

    def gateway(self, snap: ModelSnapshot, ref: Ref, tls: TlsState = NO_TLS) -> ProxyResources:
        out = ProxyResources()
        gw = snap.gateways[ref]
        tls_on = ProxyIdentity("gateway", *ref).node_id in tls.capable
        mesh = snap.mesh
        rname = names.gateway_route(ref)
        table, used = self.gateway_routes(snap, ref)
        out.routes[rname] = table
        for cr in sorted(used):
            self._add_cluster(snap, cr, out, tls, tls_on)
        out.listeners.update(gateway_listeners(ref, gw, mesh))
        return out
