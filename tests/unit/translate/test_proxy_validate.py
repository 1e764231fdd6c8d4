"""Every proxy of the shop mesh, wrapped as a static bootstrap, passes `envoy --mode validate`
(which fails on any deprecated field)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from shop import shop
from translate_helpers import proxies, shop_with_legacy, shop_with_odd_subsets

from gossamer.envoy.validate import validate_config_sync
from gossamer.model import ModelSnapshot
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import Translator


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
