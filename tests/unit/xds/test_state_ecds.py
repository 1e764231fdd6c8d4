"""Filter configs (ECDS) in the stream's order: a listener's new filter config goes out as
soon as the warming listener asks for it (like its routes), an update of a filter config
alone is pushed without touching listeners, and routes wait for filter configs being
updated (a route emitting a new bucket's descriptor finds the bucket)."""

from __future__ import annotations

import pytest
from envoy.config.core.v3 import extension_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2
from google.protobuf import any_pb2
from xds_fakes import C, E, FakeEnvoy, L, R, cla, cluster, listener, route

from gossamer.xds.resources import PUSH_ORDER, ResourceType
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot

X = ResourceType.EXTENSION_CONFIG


def config(name: str, rev: int) -> extension_pb2.TypedExtensionConfig:
    limit = local_rate_limit_pb2.LocalRateLimit(stat_prefix=f"rev{rev}")
    packed = any_pb2.Any()
    packed.Pack(limit)
    return extension_pb2.TypedExtensionConfig(name=name, typed_config=packed)


def snap(x: int, r: int = 1, serializer: Serializer | None = None) -> Snapshot:
    return Snapshot.build(
        {
            C: {"c1": cluster("c1", 1)},
            E: {"c1": cla("c1", 1)},
            L: {"l1": listener("l1", 1)},
            X: {"x1": config("x1", x)},
            R: {"r1": route("r1", r)},
        },
        serializer or Serializer(),
    )


def test_filter_configs_go_after_listeners_and_before_routes() -> None:
    assert PUSH_ORDER.index(L) < PUSH_ORDER.index(X) < PUSH_ORDER.index(R)
    assert not X.full_state  # named, asked for by the listeners using them


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_warming_listener_gets_its_filter_config_then_updates_alone(delta: bool) -> None:
    serializer = Serializer()
    first = snap(1, serializer=serializer)
    env = FakeEnvoy(delta=delta)
    env.request(C, snap=first)
    env.request(L, snap=first)
    c = env.push(first)
    assert c is not None and c.type is C
    env.request(E, ["c1"], nonce="")
    env.ack(c)
    e = env.push(first)
    assert e is not None and e.type is E
    env.ack(e)
    lis = env.push(first)
    assert lis is not None and lis.type is L
    # Envoy asks for the listener's filter configs and routes before it ACKs the listener
    # (which warms until it has them): they go out at once, filter configs first.
    env.request(X, ["x1"], nonce="")
    env.request(R, ["r1"], nonce="")
    x = env.push(first)
    r = env.push(first)
    assert x is not None and r is not None and (x.type, r.type) == (X, R)
    for out in (lis, x, r):
        env.ack(out)
    assert env.state.in_sync(first)

    # A budget change: only the filter config goes out.
    second = snap(2, serializer=serializer)
    sent = env.push_all(second)
    assert [o.type for o in sent] == [X]
    assert [r.name for r in sent[0].resources] == ["x1"]

    # A filter config and a route changing together: the route waits for its ACK.
    third = snap(3, r=2, serializer=serializer)
    x = env.push(third)
    assert x is not None and x.type is X
    assert env.push(third) is None
    env.ack(x)
    r = env.push(third)
    assert r is not None and r.type is R
