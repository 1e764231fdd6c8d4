"""The pieces many proxies share: a service port's clusters, endpoint sets and route table,
and the virtual hosts of gateways serving the same Routes.

Every sidecar that calls a service port, and every gateway that routes to it, holds the same
cluster, endpoints (per caller zone) and route table; building them once per change rather
than once per proxy is what keeps a round of translations cheap. ``SharedPieces`` builds
them through its ``Memo``, keyed by exactly the inputs each depends on; ``Translator``
(``gossamer.translate.proxy``) assembles each proxy's resources from them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2

from gossamer.model.route import Destination, Route
from gossamer.model.route_actions import Mirror
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.translate import names, tracing
from gossamer.translate.cluster_sets import ClusterSets, SetsKept
from gossamer.translate.clusters import outbound_cluster
from gossamer.translate.endpoints import in_subset, load_assignment
from gossamer.translate.gateway_tables import RouteRules, SharedTable, VhostTable
from gossamer.translate.lb import add_hash_policies
from gossamer.translate.memo import Identities, Memo
from gossamer.translate.names import ClusterRef, Subset, subset_of
from gossamer.translate.route_index import RouteIndex
from gossamer.translate.routes import (
    ClusterOf,
    default_route,
    route_configuration,
    route_references,
    routes_for_rules,
    rule_entries,
)
from gossamer.translate.tls import NO_TLS, TlsState, add_mtls_match, mode_of

ServicePortRef = tuple[Ref, str]  # (service, port name)


class GatewayTable(NamedTuple):
    """A gateway's route table, kept encoded only (``table`` decodes it): 10,000 hosts
    are 4.6 MB encoded and shared by the gateways serving the same routes, 15 MB decoded
    for each gateway."""

    #: the clusters it uses, in order
    used: tuple[ClusterRef, ...]
    #: the cluster names its routes reference
    refs: frozenset[str]
    #: ``table``'s deterministic encoding, in parts: its name's field, then the encoding
    #: of the nameless table gateways serving the same routes share (fields are encoded
    #: in number order, the name is field 1)
    encoded: tuple[bytes, bytes]

    def table(self) -> route_pb2.RouteConfiguration:
        """The table, under the gateway's name (decoded on each call, ~4 ms at 10,000
        hosts)."""
        return route_pb2.RouteConfiguration.FromString(b"".join(self.encoded))


#: the kinds a cluster and its endpoint sets are translated from (``cluster``,
#: ``endpoints``) besides their own service and its workloads: the Mesh (mTLS mode, trust
#: domain) and TrafficPolicies
_CLUSTER_INPUTS = ("Mesh", "TrafficPolicy")


@dataclass(slots=True)
class _Looked:
    """Clusters and endpoint sets looked up under one ``read`` (the generations of
    ``_CLUSTER_INPUTS``) and TLS state."""

    read: tuple[object, ...] = ()
    tls: object = None
    #: (*cluster ref, tls_on, zone) -> (the service and the workloads list it was looked
    #: up for, the cluster, the endpoint set): kept while both are the same objects (an
    #: endpoint change replaces one service's list; the others are carried)
    pairs: dict[tuple[Any, ...], tuple[Any, Any, Any, Any]] = field(default_factory=dict)


class SharedPieces:
    """Builds (and memoises across snapshots) the pieces proxies share."""

    def __init__(self) -> None:
        self.memo = Memo()
        #: what every Route holds that translating any proxy reads
        self.route_index = RouteIndex()
        #: what ``cluster_pair`` looked up (``_looked_up``)
        self._looked = _Looked()
        #: the sets ``cluster_sets`` made, kept across changes and prunes
        self._sets_kept = SetsKept()
        #: the route table each gateway built last, to patch (``gateway_tables``), and the
        #: gateways that built one since the last prune
        self._tables: dict[Ref, VhostTable] = {}
        self._tables_used: set[Ref] = set()
        #: the generations of ``_CLUSTER_INPUTS`` of the last snapshot asked about
        self._read_of: tuple[object, tuple[object, ...]] = (None, ())

    def prune(self) -> None:
        """End of a round of translations: forget what this round did not use."""
        self._looked = _Looked()
        self._sets_kept.prune()
        self.memo.prune()
        self._tables = {ref: t for ref, t in self._tables.items() if ref in self._tables_used}
        self._tables_used = set()

    def subsets(self, snap: ModelSnapshot, service: Ref) -> tuple[Subset, ...]:
        """The subsets of ``service`` some Route (east-west or gateway) sends to."""
        return self.route_index.subsets(snap, service)

    def _resolve(
        self,
        d: Destination | Mirror,
        namespace: str,
        snap: ModelSnapshot,
        same: ServicePortRef | None,
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
        policy = snap.traffic_policy(ref, subset)

        def build() -> cluster_pb2.Cluster:
            name = names.outbound_cluster(ref, port_name, subset)
            cluster = outbound_cluster(name, port, snap.mesh, sidecars=sidecars, policy=policy)
            # Sidecars of a service not ``off`` may be sent mTLS (once EDS marks them).
            if sidecars and mode_of(snap, ref) != "off":
                add_mtls_match(cluster, snap, ref, http2=port.is_http)
            return cluster

        if not tls_on:
            return self.memo.get(
                "cluster",
                (svc, port_name, subset, snap.mesh, sidecars, policy),
                lambda: outbound_cluster(
                    names.outbound_cluster(ref, port_name, subset),
                    port,
                    snap.mesh,
                    sidecars=sidecars,
                    policy=policy,
                ),
            )
        inputs = (svc, port_name, subset, snap.mesh, sidecars, policy)
        return self.memo.get("mtls-cluster", inputs, build)

    def endpoints(
        self,
        snap: ModelSnapshot,
        cr: ClusterRef,
        tls: TlsState = NO_TLS,
        zone: str | None = None,
    ) -> endpoint_pb2.ClusterLoadAssignment:
        """A cluster's endpoint set as callers in ``zone`` see it (``translate.locality``):
        callers in one zone share it."""
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
                caller_zone=zone,
            )

        inputs = (svc, port_name, subset, workloads, tuple(sorted(marked)), zone)
        return self.memo.get("endpoints", inputs, build)

    @staticmethod
    def _hash_routes(
        snap: ModelSnapshot,
        routes: list[rc_pb2.Route],
        used: frozenset[ClusterRef] | set[ClusterRef],
    ) -> None:
        """Routes to a ringHash/maglev cluster hash what its TrafficPolicy says."""
        by_name = {names.outbound_cluster(*cr): cr for cr in used}

        def policy_of(name: str) -> TrafficPolicy | None:
            cr = by_name.get(name)
            return snap.traffic_policy(cr[0], cr[2]) if cr else None

        add_hash_policies(routes, policy_of)

    def _cluster_of(
        self, snap: ModelSnapshot, same: ServicePortRef | None, used: set[ClusterRef]
    ) -> ClusterOf:
        def cluster_of(d: Destination | Mirror, namespace: str) -> tuple[str, bool]:
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
            rules = rule_entries(routes)
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
            self._hash_routes(snap, table, used)
            name = names.outbound_route(*sp)
            return route_configuration(name, [(name, ["*"], table)]), frozenset(used)

        targets = tuple(
            snap.services.get((d.namespace or r.metadata.namespace, d.service))
            for r in routes
            for rule in r.spec.rules
            for d in rule.targets()
        )
        inputs = (routes, sp, snap.mesh, targets, snap.generation("TrafficPolicy"))
        return self.memo.get("service-routes", inputs, build)

    def _looked_up(self, snap: ModelSnapshot, tls: TlsState) -> _Looked:
        """What ``cluster_pair`` looked up, kept while the Mesh, the TrafficPolicies and
        the TLS state are unchanged. (``prune`` forgets it: every entry was looked up in
        the memo since the last prune.)"""
        if self._read_of[0] is not snap.resources:  # (once per snapshot, not per cluster)
            self._read_of = (snap.resources, tuple(map(snap.generation, _CLUSTER_INPUTS)))
        read = self._read_of[1]
        looked = self._looked
        if looked.read != read or looked.tls is not tls:
            looked = self._looked = _Looked(read, tls)
        return looked

    def cluster_sets(
        self,
        snap: ModelSnapshot,
        used: tuple[ClusterRef, ...],
        tls: TlsState,
        tls_on: bool,
        zone: str | None,
    ) -> ClusterSets:
        """The clusters and endpoint sets of ``used``, by name, as a proxy in ``zone``
        gets them: made once for every gateway that uses the same clusters (10,000 each at
        10k services, ~40 ms a gateway)."""
        read = self._looked_up(snap, tls).read
        key = (tls_on, zone)
        return self._sets_kept.get(
            key, read, tls, used, snap, lambda cr: self.cluster_pair(snap, cr, tls, *key)
        )

    def cluster_pair(
        self,
        snap: ModelSnapshot,
        cr: ClusterRef,
        tls: TlsState,
        tls_on: bool,
        zone: str | None,
    ) -> tuple[cluster_pb2.Cluster, endpoint_pb2.ClusterLoadAssignment]:
        """A cluster and its endpoint set, as a proxy in ``zone`` gets them."""
        # Many proxies share clusters: each is looked up once while what clusters and
        # endpoint sets read is unchanged. A Route-only change keeps them all, an
        # endpoint change all but its service's: at 10k services the first gateway
        # after either looked 10,000 clusters up again (~150 ms).
        done = self._looked_up(snap, tls).pairs
        key = (*cr, tls_on, zone)
        svc, workloads = snap.services[cr[0]], snap.workloads_of(cr[0])
        hit = done.get(key)
        if hit is not None and hit[0] is svc and hit[1] is workloads:
            return hit[2], hit[3]
        pair = (self.cluster(snap, cr, tls_on), self.endpoints(snap, cr, tls, zone))
        done[key] = (svc, workloads, *pair)
        return pair

    def gateway_routes(
        self, snap: ModelSnapshot, ref: Ref, sampling: rc_pb2.Tracing | None = None
    ) -> GatewayTable:
        """A gateway's route table (virtual hosts by domain), the clusters it uses, in
        order, and the cluster names its routes reference (``route_references``, walked
        once per Route however many gateways and tables share it: walking 10,000
        virtual hosts at 10k services took ~30 ms a table). ``sampling``: what every
        route carries when the gateway traces (``tracing.gateway_sampling``)."""
        gw = snap.gateways[ref]
        rate = None if sampling is None else sampling.random_sampling.numerator

        def rules_of(r: Route) -> RouteRules:
            # One Route's Envoy routes, shared by every gateway and domain it serves, the
            # clusters they use and the cluster names they reference.
            used: set[ClusterRef] = set()
            rules = rule_entries([r])
            built = routes_for_rules(rules, self._cluster_of(snap, None, used), snap.mesh)
            self._hash_routes(snap, built, used)
            if sampling is not None:
                tracing.sample(built, sampling)
            return built, frozenset(used), route_references(built)

        def build() -> GatewayTable:
            routes = snap.routes_for_gateway(ref)
            common = (
                snap.generation("Service"),
                snap.mesh,
                snap.generation("TrafficPolicy"),
                rate,
            )

            def rules_for(r: Route) -> RouteRules:
                return self.memo.get("gateway-route-rules", (r, *common), partial(rules_of, r))

            def build_vhosts() -> SharedTable:
                # Gateways serving the same routes share this table, encoded once and
                # decoded under each one's name (a 10,000-host table: ~4 ms, a copy ~8 ms);
                # the table this gateway built last is patched when few Routes changed.
                key = (tuple(gw.spec.hosts), *common)
                self._tables_used.add(ref)
                last = self._tables.get(ref)
                if last is not None:
                    patched = last.patched(key, routes, rules_for)
                    if patched is not None:
                        return patched
                each = self.memo.each("gateway-route-rules", routes, common, rules_of)
                self._tables[ref] = VhostTable(key, gw.spec.hosts, routes, each)
                return self._tables[ref].shared

            inputs = (tuple(gw.spec.hosts), Identities(routes), *common)
            shared, used, refs = self.memo.get("gateway-vhosts", inputs, build_vhosts, slot=ref)
            name = route_pb2.RouteConfiguration(name=names.gateway_route(ref))
            return GatewayTable(used, refs, (name.SerializeToString(deterministic=True), shared))

        # Keyed by generations: any Route or Service change rebuilds gateway tables, but
        # the key costs nothing to compute whatever the number of routes.
        inputs = (
            gw,
            snap.generation("Route"),
            snap.generation("Service"),
            snap.mesh,
            snap.generation("TrafficPolicy"),
            rate,
        )
        return self.memo.get("gateway-routes", inputs, build, slot=ref)
