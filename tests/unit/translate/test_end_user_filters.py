"""End users at a sidecar's inbound (``translate.jwt``, ``translate.ext_authz``): the
``jwt_authn`` (config over ECDS, keys inline) and ``ext_authz`` (off) filters are in every
inbound HCM from the start, so the listener is the same with or without issuers and in every
mode; an enforcing service's routes name the token requirement and turn the decision point
on with the service; its sidecar gets the decision point's cluster; the config passes
``envoy --mode validate``."""

from __future__ import annotations

import json

import pytest
from envoy.extensions.filters.http.ext_authz.v3 import ext_authz_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from rbac_policies import REVIEWS, engine_state
from shop import shop
from translate_helpers import hcm_of

from gossamer.authz.service_access import AccessState, ServiceAccessCompiler
from gossamer.envoy.validate import validate_config_sync
from gossamer.errors import ValidationError
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.model.authentication import jwks_error
from gossamer.testing.jwt_tokens import TokenIssuer
from gossamer.translate import ext_authz, jwt
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.translate.rbac import RBAC_FILTER
from gossamer.types import ProxyIdentity

REVIEWS_1 = ProxyIdentity("sidecar", "default", "reviews-1")
IDP = TokenIssuer("https://idp.example")


def _snap(mode: str, issuers: bool) -> ModelSnapshot:
    auth = ""
    if issuers:
        jwks = json.dumps(IDP.jwks())
        auth = (
            f", authentication: {{jwt: [{{issuer: 'https://idp.example', audiences: [shop],"
            f" jwks: {{inline: {jwks}}}, claimsToAttributes: {{groups: {{admins: admins}}}}}}]}}"
        )
    return shop().with_changes(
        parse_yaml(
            f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{authorization: {{mode: {mode}}}{auth}}}
""",
            "mesh.yaml",
        )
    )


def _reviews(snap: ModelSnapshot, decision_point: bool = True) -> ProxyResources:
    compiler = ServiceAccessCompiler(engine_state().decider)
    access = AccessState(compiler.compile_all([REVIEWS, ("default", "ratings")]))
    t = Translator()
    if decision_point:
        t.authz_service = ext_authz.AuthzService("127.0.0.1", 9191)
    return t.proxy(snap, REVIEWS_1, access=access)


def test_the_filters_are_there_from_the_start_and_the_listener_never_changes() -> None:
    listeners = set()
    for mode in ("off", "audit", "enforce"):
        for issuers in (False, True):
            res = _reviews(_snap(mode, issuers))
            hcm = hcm_of(res.listeners["inbound|http"])
            names = [f.name for f in hcm.http_filters]
            assert names[:3] == [RBAC_FILTER, jwt.JWT_FILTER, ext_authz.EXT_AUTHZ_FILTER]
            assert hcm.http_filters[1].HasField("config_discovery")
            assert hcm.http_filters[2].disabled
            listeners.add(res.listeners["inbound|http"].SerializeToString(deterministic=True))
            assert jwt.JWT_FILTER in res.extension_configs
    assert len(listeners) == 1


def test_an_enforcing_service_decides_end_users_on_every_route() -> None:
    res = _reviews(_snap("enforce", True))
    (vh,) = res.routes["inbound|http"].virtual_hosts
    assert len(vh.routes) == 4  # the prefix routes of the RBAC and the catch-all
    for r in vh.routes:
        assert RBAC_FILTER in r.typed_per_filter_config
        req = jwt_pb2.PerRouteConfig()
        assert r.typed_per_filter_config[jwt.JWT_FILTER].Unpack(req)
        assert req.requirement_name == jwt.REQUIREMENT
        check = ext_authz_pb2.ExtAuthzPerRoute()
        assert r.typed_per_filter_config[ext_authz.EXT_AUTHZ_FILTER].Unpack(check)
        assert dict(check.check_settings.context_extensions) == {"service": "default/reviews"}
    assert (
        res.clusters[ext_authz.CLUSTER]
        .load_assignment.endpoints[0]
        .lb_endpoints[0]
        .endpoint.address.socket_address.port_value
        == 9191
    )
    config = jwt_pb2.JwtAuthentication()
    assert res.extension_configs[jwt.JWT_FILTER].typed_config.Unpack(config)
    (provider,) = config.providers.values()
    assert provider.issuer == "https://idp.example" and list(provider.audiences) == ["shop"]
    assert json.loads(provider.local_jwks.inline_string) == json.loads(IDP.jwks())
    assert provider.payload_in_metadata == jwt.PAYLOAD_KEY


@pytest.mark.parametrize(("mode", "issuers"), [("audit", True), ("enforce", False), ("off", True)])
def test_no_end_user_decisions_without_enforce_and_issuers(mode: str, issuers: bool) -> None:
    res = _reviews(_snap(mode, issuers))
    for vh in res.routes["inbound|http"].virtual_hosts:
        for r in vh.routes:
            assert ext_authz.EXT_AUTHZ_FILTER not in r.typed_per_filter_config
            assert jwt.JWT_FILTER not in r.typed_per_filter_config
    assert ext_authz.CLUSTER not in res.clusters


def test_bad_jwks_and_an_unread_file_are_refused_naming_the_field() -> None:
    assert jwks_error("{}") is not None
    assert jwks_error('{"keys": [{"kty": "RSA", "n": "x"}]}') == "keys[0] (RSA) lacks e"
    private = json.loads(IDP.jwks())
    private["keys"][0]["d"] = "secret"
    assert "private" in (jwks_error(json.dumps(private)) or "")
    with pytest.raises(ValidationError, match=r"spec.authentication.jwt\[0\].jwks: inline: a JWKS"):
        _snap_text("jwt: [{issuer: a, jwks: {inline: '{\"keys\": []}'}}]")
    snap = _snap_text("jwt: [{issuer: a, jwks: {file: keys.json}}]")
    from gossamer.model.references import check_references

    errors = check_references(snap)
    assert [e.path for e in errors] == ["spec.authentication.jwt[0].jwks.file"]


def _snap_text(auth: str) -> ModelSnapshot:
    return shop().with_changes(
        parse_yaml(
            f"apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {{name: default}}\n"
            f"spec: {{authentication: {{{auth}}}}}\n",
            "mesh.yaml",
        )
    )


@pytest.mark.integration
@pytest.mark.parametrize("issuers", [True, False])
def test_the_sidecar_config_passes_envoy_validate(issuers: bool) -> None:
    # without issuers the jwt_authn config is the default one (one provider no token meets)
    res = _reviews(_snap("enforce", issuers))
    bootstrap = static_bootstrap(
        listeners=res.listeners.values(),
        clusters=res.clusters.values(),
        endpoints=res.endpoints.values(),
        routes=res.routes.values(),
        node=REVIEWS_1,
        extension_configs=res.extension_configs.values(),
    )
    validate_config_sync(bootstrap, timeout_s=120.0)
