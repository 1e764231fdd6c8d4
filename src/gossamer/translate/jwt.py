"""End users' tokens verified at a sidecar's inbound: Envoy's ``jwt_authn`` filter
(docs/ngac.md, "End users").

Every inbound HCM holds the filter from the start, after the RBAC filter. Its config (the
Mesh's issuers with their keys **inline**, ``local_jwks``: no proxy ever fetches from an
identity provider) is one ECDS resource shared by every sidecar, so adding an issuer or
rotating its keys pushes that resource and changes no listener. The keys of an issuer with
a ``jwks.uri`` are those the control plane fetched (a ``FetchedJwks`` record, for that
same uri); until there is one, the issuer has no provider, so its tokens are refused (401).
The filter applies no requirement by itself: a route names the requirement
(``PerRouteConfig``), which
``ext_authz.inbound_table`` does for the routes of services that decide end users. So
turning it on for a service is a route table push, nothing drains.

The requirement: a token, if present, must verify against one of the issuers (signature,
``iss``, ``aud``, ``exp``/``nbf`` with Envoy's 60 s clock skew); else Envoy answers 401
before anything else sees the request. No token: the request goes on (the caller's service
identity is still decided by the RBAC). A verified token's payload is written to the
request's dynamic metadata (``envoy.filters.http.jwt_authn`` / ``payload``), which the
``ext_authz`` filter sends to the decision point. The token itself is not forwarded to the
app.
"""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import base_pb2, config_source_pb2, extension_pb2
from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from google.protobuf import empty_pb2

from gossamer.model.authentication import JwtIssuer
from gossamer.model.internal import FetchedJwks, fetched_jwks_key
from gossamer.model.snapshot import ModelSnapshot
from gossamer.translate.common import ads_source, any_of

JWT_FILTER = "envoy.filters.http.jwt_authn"
#: where a verified token's payload is in the dynamic metadata (namespace ``JWT_FILTER``)
PAYLOAD_KEY = "payload"
#: the requirement routes of end-user-deciding services name
REQUIREMENT = "gossamer-end-users"
#: the issuer of the default config's one provider, which no token can satisfy
_NO_ISSUER = "gossamer:no-issuer-configured"
#: its key: a P-256 public key whose private key was thrown away when it was made (Envoy
#: refuses a provider without a valid key: an empty JWKS would fail the whole listener)
_NO_KEY = (
    '{"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256",'
    ' "x": "nSTMMAIxrTuLw_EkwFg5pIrbNEsl5rNyL0Scr5tktlQ",'
    ' "y": "HFzanRi7I31d0Crw-D7YeHm_wQs4MDGENdFdkTdiYUo"}]}'
)
_TYPE_URL = "type.googleapis.com/" + jwt_pb2.JwtAuthentication.DESCRIPTOR.full_name


def provider_name(index: int) -> str:
    return f"issuer-{index}"


def _provider(issuer: str, audiences: Sequence[str], jwks: str) -> jwt_pb2.JwtProvider:
    return jwt_pb2.JwtProvider(
        issuer=issuer,
        audiences=list(audiences),
        local_jwks=base_pb2.DataSource(inline_string=jwks),
        payload_in_metadata=PAYLOAD_KEY,
        forward=False,
    )


def fetched(snap: ModelSnapshot) -> tuple[FetchedJwks | None, ...]:
    """For each issuer of the Mesh, in order, the keys the control plane fetched for it
    (None: it has no ``jwks.uri``, or nothing was fetched yet)."""
    out: list[FetchedJwks | None] = []
    for j in snap.mesh.spec.authentication.jwt:
        record = snap.resources.get(fetched_jwks_key(j.issuer)) if j.jwks.uri else None
        out.append(record if isinstance(record, FetchedJwks) else None)
    return tuple(out)


def _keys(issuer: JwtIssuer, record: FetchedJwks | None) -> str | None:
    """The JWKS ``issuer``'s tokens are verified with; None: none yet."""
    if issuer.jwks.inline is not None:
        return issuer.jwks.inline
    if record is not None and (record.spec.issuer, record.spec.uri) == (
        issuer.issuer,
        issuer.jwks.uri,
    ):
        return record.spec.jwks
    # a uri not fetched yet (or keys fetched from a uri the Mesh no longer names); a file
    # is read by the CLI, and refused by the model checks when it was not
    return None


def authentication(
    issuers: Sequence[JwtIssuer], records: Sequence[FetchedJwks | None] = ()
) -> jwt_pb2.JwtAuthentication:
    """The filter's config: one provider per issuer with keys (``records``: the keys
    fetched for each, ``fetched``), and ``REQUIREMENT``: any of them, or no token. An
    issuer without keys has no provider: its tokens are refused like any unknown issuer's.
    With no provider, one no token satisfies: a route naming the requirement then refuses
    every token (fail closed) and passes requests without one."""
    providers: dict[str, jwt_pb2.JwtProvider] = {}
    for i, j in enumerate(issuers):
        keys = _keys(j, records[i] if i < len(records) else None)
        if keys is not None:
            providers[provider_name(i)] = _provider(j.issuer, j.audiences, keys)
    if not providers:
        providers[provider_name(0)] = _provider(_NO_ISSUER, [], _NO_KEY)
    Req = jwt_pb2.JwtRequirement
    any_of_them = [Req(provider_name=name) for name in providers]
    any_of_them.append(Req(allow_missing=empty_pb2.Empty()))
    return jwt_pb2.JwtAuthentication(
        providers=providers,
        requirement_map={
            REQUIREMENT: Req(requires_any=jwt_pb2.JwtRequirementOrList(requirements=any_of_them))
        },
    )


def http_filter() -> hcm_pb2.HttpFilter:
    """The inbound HCM's filter; its config comes over ECDS (``extension_config``)."""
    return hcm_pb2.HttpFilter(
        name=JWT_FILTER,
        config_discovery=config_source_pb2.ExtensionConfigSource(
            config_source=ads_source(),
            # Used only if Envoy waited its initial fetch timeout in vain: no issuer, so
            # every token is refused on routes that decide end users.
            default_config=any_of(authentication(())),
            type_urls=[_TYPE_URL],
        ),
    )


def extension_config(
    issuers: Sequence[JwtIssuer], records: Sequence[FetchedJwks | None] = ()
) -> extension_pb2.TypedExtensionConfig:
    """The ECDS resource every sidecar's inbound ``jwt_authn`` filter reads."""
    return extension_pb2.TypedExtensionConfig(
        name=JWT_FILTER, typed_config=any_of(authentication(issuers, records))
    )


def per_route() -> jwt_pb2.PerRouteConfig:
    """What a route deciding end users carries: ``REQUIREMENT``."""
    return jwt_pb2.PerRouteConfig(requirement_name=REQUIREMENT)
