"""An issuer whose keys come from ``jwks.uri`` (``translate.jwt``): its provider holds the
keys the control plane fetched (a ``FetchedJwks`` record for that same uri); until there is
one, it has no provider, so its tokens are refused like an unknown issuer's. The ECDS
resource changes with the record (a rotation reaches the proxies) and is reused otherwise."""

from __future__ import annotations

import datetime

from envoy.extensions.filters.http.jwt_authn.v3 import config_pb2 as jwt_pb2
from shop import shop

from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.model.internal import FetchedJwks, fetched_jwks_key
from gossamer.testing.jwt_tokens import TokenIssuer
from gossamer.translate import jwt
from gossamer.translate.proxy import Translator
from gossamer.types import API_VERSION, ProxyIdentity

REVIEWS_1 = ProxyIdentity("sidecar", "default", "reviews-1")
ISSUER = "https://idp.example"
URI = "https://127.0.0.9:8443/jwks.json"


def _mesh(uri: str = URI) -> ModelSnapshot:
    return shop().with_changes(
        parse_yaml(
            f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec:
  authorization: {{mode: enforce}}
  authentication:
    jwt:
    - {{issuer: '{ISSUER}', audiences: [shop], jwks: {{uri: '{uri}', refreshInterval: 30s}}}}
""",
            "mesh.yaml",
        )
    )


def _record(keys: str, uri: str = URI, issuer: str = ISSUER) -> FetchedJwks:
    key = fetched_jwks_key(issuer)
    return FetchedJwks.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "FetchedJwks",
            "metadata": {"name": key.name, "namespace": key.namespace},
            "spec": {
                "issuer": issuer,
                "uri": uri,
                "jwks": keys,
                "fetchedAt": datetime.datetime.now(datetime.UTC).isoformat(),
            },
        }
    )


def _providers(t: Translator, snap: ModelSnapshot) -> dict[str, jwt_pb2.JwtProvider]:
    config = t.proxy(snap, REVIEWS_1).extension_configs[jwt.JWT_FILTER]
    auth = jwt_pb2.JwtAuthentication()
    assert config.typed_config.Unpack(auth)
    return dict(auth.providers)


def test_an_issuer_with_a_uri_has_no_provider_until_its_keys_are_fetched() -> None:
    providers = _providers(Translator(), _mesh())
    assert [p.issuer for p in providers.values()] == ["gossamer:no-issuer-configured"]


def test_the_fetched_keys_are_sent_inline_and_a_rotation_changes_them() -> None:
    a, b = TokenIssuer(ISSUER, kid="a"), TokenIssuer(ISSUER, kid="b")
    t = Translator()
    snap = _mesh().with_changes([_record(a.jwks())])
    first = _providers(t, snap)
    assert [p.issuer for p in first.values()] == [ISSUER]
    provider = next(iter(first.values()))
    assert provider.local_jwks.inline_string == a.jwks()
    assert list(provider.audiences) == ["shop"]
    # unchanged inputs: the same config object (memoised)
    again = snap.with_changes([])
    cfg = t.proxy(snap, REVIEWS_1).extension_configs[jwt.JWT_FILTER]
    assert t.proxy(again, REVIEWS_1).extension_configs[jwt.JWT_FILTER] is cfg
    rotated = _providers(t, snap.with_changes([_record(b.jwks())]))
    assert next(iter(rotated.values())).local_jwks.inline_string == b.jwks()


def test_keys_fetched_from_another_uri_are_not_used() -> None:
    a = TokenIssuer(ISSUER, kid="a")
    snap = _mesh("https://127.0.0.9:8443/other.json").with_changes([_record(a.jwks())])
    providers = _providers(Translator(), snap)
    assert [p.issuer for p in providers.values()] == ["gossamer:no-issuer-configured"]
