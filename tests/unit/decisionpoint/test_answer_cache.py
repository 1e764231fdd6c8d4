"""The decision point's answer cache: answers are kept per graph version (a new version
answers afresh), requests equal on what decides share an answer and others do not, and a
token's numeric claim maps as ``authz check`` maps it."""

from __future__ import annotations

import json

from envoy.service.auth.v3 import external_auth_pb2
from google.protobuf import struct_pb2

from gossamer.authz.engine import build_state
from gossamer.authz.snapshot import dump
from gossamer.decisionpoint.answers import AnswerCache
from gossamer.decisionpoint.decision import DecisionPoint, Policy
from gossamer.decisionpoint.service import AuthorizationServicer
from gossamer.model.access_policy import AccessPolicy

ISSUER = "https://idp.example"
WEB = "spiffe://shop.local/ns/default/sa/web"


def _policy(version: str, rights: list[str], prohibit: bool = False) -> Policy:
    spec: dict[str, object] = {
        "policyClasses": ["shop"],
        "userAttributes": {"frontends": ["shop"], "gold": ["shop"]},
        "objectAttributes": {
            "svc:default/cart": ["shop"],
            "svc:default/cart:/orders": ["svc:default/cart"],
        },
        "users": {WEB: ["frontends"]},
        "associations": [
            {"userAttribute": "frontends", "target": "svc:default/cart", "rights": rights},
            {"userAttribute": "gold", "target": "svc:default/cart", "rights": ["GET"]},
        ],
    }
    if prohibit:
        spec["prohibitions"] = [
            {"name": "no-orders", "subject": WEB, "rights": ["GET"],
             "include": ["svc:default/cart:/orders"]}
        ]  # fmt: skip
    manifest = {
        "apiVersion": "gossamer.dev/v1",
        "kind": "AccessPolicy",
        "metadata": {"name": "shop"},
        "spec": spec,
    }
    state = build_state([AccessPolicy.model_validate(manifest)], [])
    document = {
        "version": version,
        "graph": json.loads(json.dumps(dump(state.graph))),
        "issuers": [{"issuer": ISSUER, "claimsToAttributes": {"tier": {"1": "gold"}}}],
    }
    return Policy.of(document, "test")


def _check(
    path: str, principal: str = WEB, method: str = "GET", claims: dict[str, object] | None = None
) -> external_auth_pb2.CheckRequest:
    req = external_auth_pb2.CheckRequest()
    a = req.attributes
    a.source.principal = principal
    a.request.http.method = method
    a.request.http.path = path
    a.context_extensions["service"] = "default/cart"
    if claims is not None:
        payload = struct_pb2.Struct()
        payload.update(claims)
        meta = a.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"]
        meta.fields["payload"].struct_value.CopyFrom(payload)
    return req


def _allowed(servicer: AuthorizationServicer, req: external_auth_pb2.CheckRequest) -> bool:
    return servicer.check(req).status.code == 0


def test_a_new_graph_version_is_answered_afresh() -> None:
    point = DecisionPoint(_policy("1", ["GET"]))
    servicer = AuthorizationServicer(point)
    assert _allowed(servicer, _check("/orders/7"))
    assert _allowed(servicer, _check("/orders/8?x=1"))  # the same facts: the kept answer
    assert servicer.stats.decided == 1
    point.policy = _policy("2", ["GET"], prohibit=True)  # as the loader assigns a version
    assert not _allowed(servicer, _check("/orders/7"))
    assert servicer.check(_check("/orders/9")).denied_response.body == (
        f"denied: {WEB} may not GET svc:default/cart:/orders\n"
    )
    point.policy = _policy("3", ["POST"])
    assert not _allowed(servicer, _check("/items"))
    assert _allowed(servicer, _check("/items", method="POST"))
    assert servicer.stats.decided == 4 and servicer.stats.checks == 6


def test_only_equal_deciding_facts_share_an_answer() -> None:
    servicer = AuthorizationServicer(DecisionPoint(_policy("1", ["GET"])))
    other = "spiffe://shop.local/ns/default/sa/other"
    assert _allowed(servicer, _check("/orders"))
    assert not _allowed(servicer, _check("/orders", principal=other))
    assert not _allowed(servicer, _check("/orders", method="POST"))
    bob = {"iss": ISSUER, "sub": "bob"}
    assert not _allowed(servicer, _check("/orders", claims=bob))
    assert _allowed(servicer, _check("/orders", claims={**bob, "tier": 1}))
    assert servicer.stats.decided == 5
    # tier 2 maps to nothing: bob holds what bob without a tier holds, the same answer
    assert not _allowed(servicer, _check("/orders", claims={**bob, "tier": 2}))
    assert servicer.stats.decided == 5
    assert not _allowed(servicer, _check("/orders", claims={"iss": ISSUER}))
    assert servicer.stats.decided == 6


def test_the_cache_is_bounded() -> None:
    cache: AnswerCache[int] = AnswerCache(limit=2)
    owner = object()
    answers = cache.of(owner)
    answers[("s", "p", "", (), False, "GET", None)] = 1
    answers[("s", "q", "", (), False, "GET", None)] = 2
    assert cache.of(owner) == {} and cache.of(owner) is answers
    assert cache.of(object()) is not answers
