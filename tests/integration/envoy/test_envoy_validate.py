from __future__ import annotations

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.type.matcher.v3 import regex_pb2

from gossamer.envoy.validate import validate_config, validate_config_sync
from gossamer.errors import EnvoyError
from gossamer.model.route import Rule
from gossamer.model.snapshot import ModelSnapshot
from gossamer.testing import resources
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.routes import routes_for_rules

pytestmark = pytest.mark.integration

WEB = resources.static_cluster("web", [("127.0.0.2", 8080)])
LISTENER = resources.http_listener(
    "in", ("127.0.0.1", 10000), resources.route_configuration("r", {"web": "web"})
)


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


def _with_route_match(match: rc_pb2.RouteMatch) -> bootstrap_pb2.Bootstrap:
    table = resources.route_configuration("r", {"web": "web"})
    table.virtual_hosts[0].routes[0].match.CopyFrom(match)
    listener = resources.http_listener("in", ("127.0.0.1", 10000), table)
    return static_bootstrap(listeners=[listener], clusters=[WEB])


def test_a_deprecated_field_is_rejected() -> None:
    # RegexMatcher.google_re2 is deprecated: Envoy alone only warns; validation must fail.
    deprecated = regex_pb2.RegexMatcher(google_re2=regex_pb2.RegexMatcher.GoogleRE2(), regex="/x")
    with pytest.raises(EnvoyError, match="google_re2"):
        validate_config_sync(_with_route_match(rc_pb2.RouteMatch(safe_regex=deprecated)))
    # ... unless asked to allow deprecated fields
    validate_config_sync(
        _with_route_match(rc_pb2.RouteMatch(safe_regex=deprecated)), fail_on_deprecated=False
    )


def test_the_translators_regex_routes_use_no_deprecated_field() -> None:
    rule = Rule.model_validate(
        {
            "matches": [
                {
                    "path": {"regex": "/items/[0-9]+"},
                    "headers": [{"name": "x-user", "regex": "^[a-z]+$"}],
                }
            ],
            "destinations": [{"service": "web"}],
        }
    )
    [route] = routes_for_rules(
        [(rule, "default", "r")], lambda d, ns: ("web", False), ModelSnapshot().mesh
    )
    assert route.match.HasField("safe_regex")
    validate_config_sync(_with_route_match(route.match))


def test_the_callers_runtime_layers_are_kept() -> None:
    bootstrap = static_bootstrap(clusters=[WEB])
    layer = bootstrap.layered_runtime.layers.add(name="mine")
    layer.static_layer.update({"envoy.features.fail_on_any_deprecated_feature": False})
    deprecated = regex_pb2.RegexMatcher(google_re2=regex_pb2.RegexMatcher.GoogleRE2(), regex="/x")
    bad = _with_route_match(rc_pb2.RouteMatch(safe_regex=deprecated))
    bad.layered_runtime.CopyFrom(bootstrap.layered_runtime)
    # validation's own layer comes last and wins; the caller's bootstrap is not changed
    with pytest.raises(EnvoyError, match="google_re2"):
        validate_config_sync(bad)
    assert [layer.name for layer in bad.layered_runtime.layers] == ["mine"]
