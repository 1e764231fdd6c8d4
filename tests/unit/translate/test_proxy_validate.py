"""Every proxy of the shop mesh, wrapped as a static bootstrap, passes `envoy --mode validate`
(which fails on any deprecated field)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import cluster_pb2
from shop import shop
from translate_helpers import proxies, shop_with_legacy, shop_with_odd_subsets

from gossamer.envoy.validate import validate_config_sync
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.translate.bootstrap import sds_cluster, static_bootstrap
from gossamer.translate.proxy import Translator
from gossamer.translate.tls import TlsState
from gossamer.types import API_VERSION


def _bootstraps(snap: ModelSnapshot) -> dict[str, bootstrap_pb2.Bootstrap]:
    translator = Translator()
    out = {}
    for ident in proxies(snap):
        res = translator.proxy(snap, ident)
        out[ident.node_id] = static_bootstrap(
            listeners=res.listeners.values(),
            clusters=res.clusters.values(),
            endpoints=res.endpoints.values(),
            routes=res.routes.values(),
            node=ident,
        )
    return out


def _error(bootstrap: bootstrap_pb2.Bootstrap) -> str | None:
    try:
        validate_config_sync(bootstrap, timeout_s=120.0)
    except Exception as exc:  # collect every proxy's failure, not just the first
        return str(exc)
    return None


@pytest.mark.integration
@pytest.mark.parametrize(
    "mesh",
    [shop, shop_with_legacy, shop_with_odd_subsets],
    ids=["shop", "shop+legacy", "shop+regex+odd-subsets"],
)
def test_every_generated_proxy_config_passes_envoy_validate(
    mesh: Callable[[], ModelSnapshot],
) -> None:
    # Proxies reuse names (every sidecar has an ``inbound|http``), so each one is its own
    # bootstrap: one `envoy --mode validate` per proxy, a few at a time.
    bootstraps = _bootstraps(mesh())
    assert "gateway~default~edge" in bootstraps and len(bootstraps) >= 6
    with ThreadPoolExecutor(max_workers=3) as pool:
        errors = dict(zip(bootstraps, pool.map(_error, bootstraps.values()), strict=True))
    assert {node: e for node, e in errors.items() if e is not None} == {}


def _sds_cluster() -> cluster_pb2.Cluster:
    """The agent's SDS cluster, as sidecar bootstraps have it, at a socket nobody serves."""
    return sds_cluster(Path("/tmp/gossamer-validate-sds.sock"))


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["strict", "permissive", "off"])
def test_mtls_config_of_every_proxy_passes_envoy_validate(mode: str) -> None:
    mesh = parse_manifest(
        {
            "apiVersion": API_VERSION,
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"trustDomain": "shop.local", "mtls": {"mode": mode}},
        }
    )
    snap = shop().with_changes([mesh])
    idents = proxies(snap)
    refs = frozenset((p.namespace, p.name) for p in idents if p.kind == "sidecar")
    # Half the sidecars enforce (strict: TLS only), the others are ready (both chains).
    enforced = frozenset(sorted(refs)[::2])
    tls = TlsState(frozenset(p.node_id for p in idents), refs, enforced)
    translator = Translator()
    bootstraps = {}
    for ident in idents:
        res = translator.proxy(snap, ident, tls)
        bootstrap = static_bootstrap(
            listeners=res.listeners.values(),
            clusters=res.clusters.values(),
            endpoints=res.endpoints.values(),
            routes=res.routes.values(),
            node=ident,
        )
        bootstrap.static_resources.clusters.append(_sds_cluster())
        bootstraps[ident.node_id] = bootstrap
    with ThreadPoolExecutor(max_workers=3) as pool:
        errors = dict(zip(bootstraps, pool.map(_error, bootstraps.values()), strict=True))
    assert {node: e for node, e in errors.items() if e is not None} == {}
