"""Per-stream cost of a change on the event loop: ``StreamState`` from new snapshot to ACKed.

Run: ``.venv/bin/python bench/xds_ack.py [--services 1000] [--repeats 200] [--delta]``.

No I/O: one stream's protocol state is driven as Envoy drives it (wildcard clusters and
listeners, endpoints and routes by name; every response ACKed at once) against a gateway's
snapshot of N clusters, N endpoint sets, one listener and one route table. Per change this
times what ``AdsStream`` and ``XdsMonitor`` do on the event loop: ``in_sync`` when the
snapshot arrives, then ``plan``/``sent`` per response and ``on_request`` + ``in_sync`` per
ACK, until ``plan`` has nothing to send. Building the gRPC response is not included (its
cost is that of the bytes sent, the same either way).

Each change is timed twice in the same run, in turns: with the snapshot as built (per-type
digests and the diff against its predecessor: the state skips an unchanged type and walks
only the changed names of a changed one) and with a digest-less copy of it (``Snapshot(
resources)``: the state walks every resource, the old path). Changes: one route (the route
table, one resource), one endpoint set (``with_resources``, as an incremental publish
does), and one cluster (a full rebuild's snapshot diffed against the previous one by
``Snapshot.build(previous=...)``, as the publisher does).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from _common import percentile, summary_ms
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.config.route.v3 import route_pb2
from google.protobuf import duration_pb2, message

from gossamer.xds.resources import ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot
from gossamer.xds.state import Outgoing, StreamState

C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE


def gateway(
    services: int, cluster_rev: int, route_rev: int
) -> dict[ResourceType, dict[str, message.Message]]:
    """A gateway's resources: N clusters and endpoint sets, a listener, one route table."""
    names = [f"outbound|default/svc-{i}|http" for i in range(services)]
    timeout = duration_pb2.Duration(seconds=route_rev)
    return {
        C: {
            n: cluster_pb2.Cluster(
                name=n, connect_timeout=duration_pb2.Duration(seconds=cluster_rev if i == 0 else 1)
            )
            for i, n in enumerate(names)
        },
        E: {n: endpoint_pb2.ClusterLoadAssignment(cluster_name=n) for n in names},
        L: {"gw": listener_pb2.Listener(name="gw", stat_prefix="gw")},
        R: {
            "gw": route_pb2.RouteConfiguration(
                name="gw",
                virtual_hosts=[
                    rc_pb2.VirtualHost(
                        name=n,
                        domains=[n],
                        routes=[
                            rc_pb2.Route(
                                match=rc_pb2.RouteMatch(prefix="/"),
                                route=rc_pb2.RouteAction(cluster=n, timeout=timeout),
                            )
                        ],
                    )
                    for n in names
                ],
            )
        },
    }


class Envoy:
    """Requests and ACKs the way Envoy does (no NACKs), against one ``StreamState``."""

    def __init__(self, delta: bool, snap: Snapshot) -> None:
        self.delta = delta
        self.state = StreamState(delta=delta)
        self.acked: dict[ResourceType, str] = {}
        self.names: dict[ResourceType, list[str]] = {C: [], L: []}
        for t in (C, L):
            self._request(t, "", snap)
        self.change(snap)
        self.names[E] = sorted(snap.of(E))
        self.names[R] = sorted(snap.of(R))
        for t in (E, R):
            self._request(t, "", snap)
        self.change(snap)
        assert self.state.in_sync(snap)

    def _request(self, t: ResourceType, nonce: str, snap: Snapshot) -> None:
        names = self.names[t]
        if self.delta:
            self.state.on_request(
                t, nonce=nonce, now=0.0, subscribe=names if not nonce else [], snapshot=snap
            )
        else:
            self.state.on_request(
                t,
                nonce=nonce,
                now=0.0,
                version_info=self.acked.get(t, ""),
                names=names,
                snapshot=snap,
            )

    def change(self, snap: Snapshot) -> int:
        """What the loop does for ``snap``: the monitor's check, then send/ACK until done."""
        responses = 0
        self.state.in_sync(snap)
        while True:
            out, _ = self.state.plan(snap, 0.0)
            if out is None:
                return responses
            sent: Outgoing = self.state.sent(out, snap, 0.0)
            responses += 1
            self.acked[sent.type] = sent.version
            self._request(sent.type, sent.nonce, snap)
            self.state.in_sync(snap)


def timed(env: Envoy, snap: Snapshot) -> float:
    started = time.perf_counter()
    responses = env.change(snap)
    elapsed = time.perf_counter() - started
    if responses == 0 or not env.state.in_sync(snap):
        raise RuntimeError("the change was not sent and ACKed")
    return elapsed


def digestless(snap: Snapshot) -> Snapshot:
    return Snapshot(snap.resources, snap.created)


def run(services: int, repeats: int, delta: bool) -> None:
    serializer = Serializer()
    first = Snapshot.build(gateway(services, 1, 1), serializer)
    changes: dict[str, Callable[[Snapshot, int], Snapshot]] = {
        "route change": lambda prev, k: Snapshot.build(
            gateway(services, 1, 2 + k), serializer, previous=prev
        ),
        "endpoint change": lambda prev, k: prev.with_resources(
            E,
            {
                n: serializer.versioned(
                    E,
                    n,
                    endpoint_pb2.ClusterLoadAssignment(
                        cluster_name=n,
                        policy=endpoint_pb2.ClusterLoadAssignment.Policy(
                            overprovisioning_factor={"value": 100 + k}
                        ),
                    ),
                )
                for n in list(prev.of(E))[:1]
            },
            0.0,
        ),
        "cluster change": lambda prev, k: Snapshot.build(
            gateway(services, 2 + k, 1), serializer, previous=prev
        ),
    }
    print(
        f"one gateway stream ({'delta' if delta else 'SotW'}): {services} clusters, "
        f"{services} endpoint sets, 1 listener, 1 route table of {services} vhosts"
    )
    for name, make in changes.items():
        # separate streams, so each path sees the same sequence of snapshots
        new, old = Envoy(delta, first), Envoy(delta, digestless(first))
        times: dict[str, list[float]] = {"digests": [], "old path": []}
        prev = first
        for k in range(repeats):
            snap = make(prev, k)
            times["digests"].append(timed(new, snap))
            times["old path"].append(timed(old, digestless(snap)))
            prev = snap
        ratio = percentile(times["old path"], 50) / percentile(times["digests"], 50)
        print(f"  {name}:")
        for path, values in times.items():
            print(f"    {path:9s} {summary_ms(values)}")
        print(f"    old path / digests (p50): {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--delta", action="store_true", help="delta ADS instead of SotW")
    args = parser.parse_args()
    if not 1 <= args.services <= 10_000 or not 1 <= args.repeats <= 10_000:
        sys.exit("--services must be 1..10000 and --repeats 1..10000")
    run(args.services, args.repeats, args.delta)


if __name__ == "__main__":
    main()
