"""Hand-made xDS snapshots and a scripted Envoy that drives ``StreamState`` like Envoy does.

Naming: listener ``lN`` uses route ``rN``, which uses cluster ``cN``; cluster ``cN`` has
endpoints ``cN``. Each resource's integer "revision" changes its content (so its version).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import address_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2 as ep_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import duration_pb2, message

from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import Outgoing, RequestOutcome, StreamState

C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE


def _address(port: int) -> address_pb2.Address:
    return address_pb2.Address(
        socket_address=address_pb2.SocketAddress(address="127.0.0.9", port_value=port)
    )


def cluster(name: str, rev: int = 1) -> cluster_pb2.Cluster:
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        connect_timeout=duration_pb2.Duration(seconds=rev),
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(service_name=name),
    )


def cla(name: str, rev: int = 1) -> endpoint_pb2.ClusterLoadAssignment:
    return endpoint_pb2.ClusterLoadAssignment(
        cluster_name=name,
        endpoints=[
            ep_pb2.LocalityLbEndpoints(
                lb_endpoints=[ep_pb2.LbEndpoint(endpoint=ep_pb2.Endpoint(address=_address(rev)))]
            )
        ],
    )


def listener(name: str, rev: int = 1) -> listener_pb2.Listener:
    return listener_pb2.Listener(
        name=name, address=_address(10000 + rev), stat_prefix="r" + name[1:]
    )


def route(name: str, rev: int = 1) -> route_pb2.RouteConfiguration:
    action = rc_pb2.RouteAction(cluster="c" + name[1:], timeout=duration_pb2.Duration(seconds=rev))
    return route_pb2.RouteConfiguration(
        name=name,
        virtual_hosts=[
            rc_pb2.VirtualHost(
                name=name,
                domains=["*"],
                routes=[rc_pb2.Route(match=rc_pb2.RouteMatch(prefix="/"), route=action)],
            )
        ],
    )


def resources(
    c: Mapping[str, int],
    e: Mapping[str, int],
    l: Mapping[str, int],  # noqa: E741
    r: Mapping[str, int],
) -> dict[ResourceType, Mapping[str, message.Message]]:
    return {
        ResourceType.CLUSTER: {n: cluster(n, v) for n, v in c.items()},
        ResourceType.ENDPOINT: {n: cla(n, v) for n, v in e.items()},
        ResourceType.LISTENER: {n: listener(n, v) for n, v in l.items()},
        ResourceType.ROUTE: {n: route(n, v) for n, v in r.items()},
    }


def snapshot(
    c: Mapping[str, int],
    e: Mapping[str, int] | None = None,
    l: Mapping[str, int] | None = None,  # noqa: E741
    r: Mapping[str, int] | None = None,
) -> Snapshot:
    """A snapshot; endpoints default to one set per cluster, all at revision 1."""
    e = {n: 1 for n in c} if e is None else e
    return Snapshot.build(resources(c, e, l or {}, r or {}), Serializer())


def mesh(n: int = 2, rev: int = 1) -> Snapshot:
    """``n`` complete chains (cN, endpoints cN, lN, rN), every resource at ``rev``."""
    names = [str(i) for i in range(1, n + 1)]
    return snapshot(
        {f"c{i}": rev for i in names},
        {f"c{i}": rev for i in names},
        {f"l{i}": rev for i in names},
        {f"r{i}": rev for i in names},
    )


def names(out: Outgoing | None) -> list[str]:
    assert out is not None
    return sorted(r.name for r in out.resources)


def versions(out: Outgoing) -> dict[str, str]:
    return {r.name: r.version for r in out.resources}


class FakeEnvoy:
    """Sends requests the way Envoy does and records what the state sends back.

    State-of-the-world: every request carries the type's full list of names (empty for the
    wildcard cluster and listener types), the last accepted version and the last nonce.
    Delta: requests carry subscription changes; ACKs and NACKs carry only the nonce.
    """

    def __init__(self, *, delta: bool, now: float = 1000.0) -> None:
        self.delta = delta
        self.now = now
        self.state = StreamState(delta=delta)
        self.names: dict[ResourceType, list[str]] = {}
        self.accepted: dict[ResourceType, str] = {}
        self.nonces: dict[ResourceType, str] = {}

    def request(
        self,
        t: ResourceType,
        names: Iterable[str] = (),
        *,
        snap: Snapshot | None = None,
        version: str | None = None,
        initial: Mapping[str, str] | None = None,
        nonce: str | None = None,
        error: str | None = None,
    ) -> RequestOutcome:
        """A request for ``names`` (the whole new list of names the proxy wants)."""
        wanted = list(names)
        before = self.names.get(t, [])
        self.names[t] = wanted
        nonce = self.nonces.get(t, "") if nonce is None else nonce
        if self.delta:
            return self.state.on_request(
                t,
                nonce=nonce,
                now=self.now,
                subscribe=[n for n in wanted if n not in before],
                unsubscribe=[n for n in before if n not in wanted],
                initial_versions=initial,
                error=error,
                snapshot=snap,
            )
        return self.state.on_request(
            t,
            nonce=nonce,
            now=self.now,
            version_info=self.accepted.get(t, "") if version is None else version,
            names=wanted,
            error=error,
            snapshot=snap,
        )

    def push(self, snap: Snapshot) -> Outgoing | None:
        """What the state sends next (recorded as sent and received), or None."""
        out, _ = self.state.plan(snap, self.now)
        if out is None:
            return None
        out = self.state.sent(out, snap, self.now)
        self.nonces[out.type] = out.nonce
        return out

    def push_all(self, snap: Snapshot, limit: int = 20) -> list[Outgoing]:
        """Push and ACK until nothing is left to send."""
        sent: list[Outgoing] = []
        for _ in range(limit):
            out = self.push(snap)
            if out is None:
                return sent
            self.ack(out)
            sent.append(out)
        raise AssertionError(f"still sending after {limit} responses: {sent}")

    def ack(self, out: Outgoing, names: Iterable[str] | None = None) -> RequestOutcome:
        """ACK ``out``, optionally changing the type's names in the same request."""
        assert self.nonces.get(out.type) == out.nonce
        self.accepted[out.type] = out.version
        wanted = self.names.get(out.type, []) if names is None else names
        return self.request(out.type, wanted, nonce=out.nonce)

    def nack(self, out: Outgoing, message: str) -> RequestOutcome:
        assert self.nonces.get(out.type) == out.nonce
        return self.request(out.type, self.names.get(out.type, []), nonce=out.nonce, error=message)


def handshake(env: FakeEnvoy, snap: Snapshot) -> None:
    """Start a stream against ``snap`` and bring it in sync (asserts nothing about order)."""
    env.request(C, snap=snap)
    env.request(L, snap=snap)
    for _ in range(20):
        out = env.push(snap)
        if out is None:
            break
        if out.type is C:
            env.request(E, sorted(snap.of(E)), nonce="")
        env.ack(out)
        if out.type is L:
            env.request(R, sorted(snap.of(R)), nonce="")
    assert env.state.in_sync(snap)
