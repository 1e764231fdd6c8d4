"""``TrafficPolicy.rateLimit`` with ``scope: service``: the sidecar bootstrap's local cluster,
its endpoint set (the service's healthy instances under that policy), the inbound filter's
``local_cluster_rate_limit``, and ``envoy --mode validate`` of all of it together."""

from __future__ import annotations

from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.filters.http.local_ratelimit.v3 import local_rate_limit_pb2

from gossamer.envoy.validate import validate_config_sync
from gossamer.errors import EnvoyError
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.testing.mesh import service, workload
from gossamer.translate import names
from gossamer.translate.bootstrap import ads_bootstrap, static_bootstrap
from gossamer.translate.local_cluster import RUNTIME
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.rate_limit import filter_name
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

REVIEWS = ("default", "reviews")
LOCAL = "local|default/reviews"
XDS = ("127.0.0.1", 18000)
ADMIN = ("127.0.0.1", 0)


def policy(name: str = "reviews", **spec: Any) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrafficPolicy",
        "metadata": {"name": name},
        "spec": {"service": "reviews", **spec},
    }


def replica(i: int, health: str = "healthy", version: str = "v1") -> Manifest:
    return workload(
        f"reviews-{i}",
        "reviews",
        f"127.0.0.{i + 2}",
        15000 + i,
        18000 + i,
        health=health,
        labels={"version": version},
    )


def mesh(*extra: Manifest, replicas: int = 3) -> ModelSnapshot:
    manifests = [service("reviews", 9080), *(replica(i) for i in range(replicas)), *extra]
    snap = ModelSnapshot()
    for m in manifests:
        snap = snap.with_changes(puts=[parse_manifest(m)])
    return snap


def sidecar(i: int) -> ProxyIdentity:
    return ProxyIdentity("sidecar", "default", f"reviews-{i}", service="reviews")


def inbound_limit(res: ProxyResources) -> local_rate_limit_pb2.LocalRateLimit:
    config = local_rate_limit_pb2.LocalRateLimit()
    assert res.extension_configs[filter_name(names.inbound_listener("http"))].typed_config.Unpack(
        config
    )
    return config


def members(res: ProxyResources) -> list[str]:
    cla = res.endpoints[LOCAL]
    return [lb.endpoint.hostname for loc in cla.endpoints for lb in loc.lb_endpoints]


SHARED = {"rateLimit": {"requests": 20, "per": "1m", "scope": "service"}}


def test_a_sidecar_bootstrap_has_its_local_cluster_over_ads() -> None:
    bootstrap = ads_bootstrap(sidecar(0), XDS, ADMIN)
    assert names.local_cluster(REVIEWS) == LOCAL
    assert bootstrap.cluster_manager.local_cluster_name == LOCAL
    [local] = [c for c in bootstrap.static_resources.clusters if c.name == LOCAL]
    assert local.type == cluster_pb2.Cluster.EDS
    assert local.eds_cluster_config.eds_config.HasField("ads")
    assert not local.eds_cluster_config.service_name  # its endpoint set has its name
    # Envoy's zone-aware routing (which a local cluster turns on) stays off; the admin
    # layer keeps /runtime_modify working
    static, admin = bootstrap.layered_runtime.layers
    assert dict(static.static_layer) == RUNTIME and admin.HasField("admin_layer")
    # deterministic: the agent adopts a running Envoy by the bootstrap's digest
    again = ads_bootstrap(sidecar(0), XDS, ADMIN)
    assert again.SerializeToString(deterministic=True) == bootstrap.SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize(
    "proxy",
    [
        ProxyIdentity("gateway", "default", "edge"),
        ProxyIdentity("sidecar", "default", "reviews-0"),  # (no service: no local cluster)
    ],
)
def test_only_a_sidecar_with_a_service_gets_a_local_cluster(proxy: ProxyIdentity) -> None:
    bootstrap = ads_bootstrap(proxy, XDS, ADMIN)
    assert not bootstrap.cluster_manager.local_cluster_name
    assert not bootstrap.HasField("layered_runtime")
    assert [c.name for c in bootstrap.static_resources.clusters] == ["gossamer-xds"]


def test_scope_service_shares_the_bucket_among_the_healthy_instances() -> None:
    snap = mesh(replica(3, health="unhealthy"), replica(4, health="draining"), policy(**SHARED))
    res = Translator().sidecar(snap, snap.workloads[("default", "reviews-0")])
    config = inbound_limit(res)
    assert config.HasField("local_cluster_rate_limit")
    [descriptor] = config.descriptors
    assert descriptor.token_bucket.max_tokens == 20  # the service's figure: Envoy divides it
    # only healthy instances count (Envoy counts every host listed, healthy or not)
    assert members(res) == ["reviews-0", "reviews-1", "reviews-2"]
    addresses = [
        lb.endpoint.address.socket_address
        for loc in res.endpoints[LOCAL].endpoints
        for lb in loc.lb_endpoints
    ]
    # each at its sidecar's inbound address: unique per instance, even on a shared host
    assert [(a.address, a.port_value) for a in addresses] == [
        ("127.0.0.2", 15000),
        ("127.0.0.3", 15001),
        ("127.0.0.4", 15002),
    ]


def test_the_default_scope_is_per_instance_and_the_local_set_stays_empty() -> None:
    for spec in ({"rateLimit": {"requests": 20, "per": "1m"}}, {}):
        snap = mesh(policy(**spec))
        res = Translator().sidecar(snap, snap.workloads[("default", "reviews-0")])
        assert not inbound_limit(res).HasField("local_cluster_rate_limit")
        assert res.endpoints[LOCAL].cluster_name == LOCAL
        assert members(res) == []  # (no scope: service, nothing that changes with health)


def test_instances_under_a_subset_policy_are_not_counted() -> None:
    """A subset policy replaces the service's on its instances, rate limit included: they
    do not take a share of the service's figure."""
    v2 = policy("reviews-v2", subset={"version": "v2"}, rateLimit={"requests": 5, "per": "1m"})
    snap = mesh(replica(5, version="v2"), v2, policy(**SHARED))
    translator = Translator()
    res = translator.sidecar(snap, snap.workloads[("default", "reviews-0")])
    assert members(res) == ["reviews-0", "reviews-1", "reviews-2"]
    in_subset = translator.sidecar(snap, snap.workloads[("default", "reviews-5")])
    assert not inbound_limit(in_subset).HasField("local_cluster_rate_limit")
    assert inbound_limit(in_subset).descriptors[0].token_bucket.max_tokens == 5


def test_a_scope_change_changes_the_filter_config_and_no_listener() -> None:
    translator = Translator()
    per_instance = mesh(policy(rateLimit={"requests": 20, "per": "1m"}))
    shared = per_instance.with_changes(puts=[parse_manifest(policy(**SHARED))])
    before = translator.sidecar(per_instance, per_instance.workloads[("default", "reviews-0")])
    after = translator.sidecar(shared, shared.workloads[("default", "reviews-0")])
    assert after.listeners == before.listeners and after.routes == before.routes
    assert inbound_limit(after).HasField("local_cluster_rate_limit")
    assert not inbound_limit(before).HasField("local_cluster_rate_limit")


def _validated_bootstrap(snap: ModelSnapshot, i: int) -> bootstrap_pb2.Bootstrap:
    """The sidecar's generated resources as a static bootstrap (the local cluster's endpoint
    set inlined), with its real bootstrap's local cluster settings."""
    proxy = sidecar(i)
    res = Translator().proxy(snap, proxy)
    real = ads_bootstrap(proxy, XDS, ADMIN)
    [local] = [c for c in real.static_resources.clusters if c.name == LOCAL]
    out = static_bootstrap(
        listeners=res.listeners.values(),
        clusters=[*res.clusters.values(), local],
        endpoints=res.endpoints.values(),
        routes=res.routes.values(),
        node=proxy,
        extension_configs=res.extension_configs.values(),
    )
    out.cluster_manager.CopyFrom(real.cluster_manager)
    out.layered_runtime.CopyFrom(real.layered_runtime)
    return out


def test_envoy_validates_a_sidecar_with_a_shared_limit_and_its_local_cluster() -> None:
    snap = mesh(policy(**SHARED))
    bootstrap = _validated_bootstrap(snap, 0)
    validate_config_sync(bootstrap, timeout_s=120.0)
    # the real bootstrap (the local cluster over ADS) too
    validate_config_sync(ads_bootstrap(sidecar(0), XDS, ADMIN), timeout_s=120.0)
    # The filter config needs the local cluster: validation does check it.
    bootstrap.cluster_manager.ClearField("local_cluster_name")
    with pytest.raises(EnvoyError, match="local_cluster_rate_limit"):
        validate_config_sync(bootstrap, timeout_s=120.0)
