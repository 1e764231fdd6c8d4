from __future__ import annotations

import pytest

from gossamer.envoy.validate import validate_config, validate_config_sync
from gossamer.errors import EnvoyError
from gossamer.testing import resources
from gossamer.translate.bootstrap import static_bootstrap

pytestmark = pytest.mark.integration

WEB = resources.static_cluster("web", [("127.0.0.2", 8080)])
LISTENER = resources.http_listener(
    "in", ("127.0.0.1", 10000), resources.route_configuration("r", {"web": "web"}))


@pytest.mark.asyncio
async def test_a_good_static_config_is_accepted() -> None:
    await validate_config(static_bootstrap(listeners=[LISTENER], clusters=[WEB]))


@pytest.mark.asyncio
async def test_a_route_to_an_unknown_cluster_is_rejected_with_envoys_message() -> None:
    with pytest.raises(EnvoyError) as info:
        await validate_config(static_bootstrap(listeners=[LISTENER]))
    first_line = str(info.value).splitlines()[0]
    assert first_line == "Envoy rejected the configuration: route: unknown cluster 'web'"


def test_the_sync_variant_rejects_duplicate_clusters() -> None:
    with pytest.raises(EnvoyError, match="duplicate cluster 'web'"):
        validate_config_sync(static_bootstrap(clusters=[WEB, WEB]))
