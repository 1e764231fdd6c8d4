"""An end user known by its claims is decided as a user assigned to exactly those
attributes would be (the 'virtual user'), by the cached decider and by the reference
procedure alike; claims map to attributes as ``claimsToAttributes`` says."""

from __future__ import annotations

import random

from gossamer.authz import reference
from gossamer.authz.end_users import EndUser, claim_attributes, decide_end_user, subject_of
from gossamer.authz.engine import build_state
from gossamer.authz.requests import decide, deciding_target
from gossamer.authz.rights import HTTP_METHODS
from gossamer.model import parse_manifest
from gossamer.model.access_policy import AccessPolicy

SERVICE = ("default", "cart")
UAS = ["ua0", "ua1", "ua2", "ua3"]
PATHS = ["/", "/a", "/a/b", "/a/b/c", "/b", "/bx", "/c?x=/a"]


def _policy(rng: random.Random, with_probe: list[str], own_parents: list[str]) -> AccessPolicy:
    targets = ["svc:default/cart", "svc:default/cart:/a", "svc:default/cart:/a/b", "apis"]
    users: dict[str, list[str]] = {"probe": with_probe}
    if own_parents:
        users["jwt:https://idp.example#bob"] = own_parents
    spec = {
        "policyClasses": ["pc"],
        "userAttributes": {"ua0": ["pc"], "ua1": ["pc"], "ua2": ["ua0"], "ua3": ["pc"]},
        "objectAttributes": {
            "apis": ["pc"],
            "svc:default/cart": ["apis"],
            "svc:default/cart:/a": ["svc:default/cart"],
            "svc:default/cart:/a/b": ["svc:default/cart:/a"],
        },
        "users": users,
        "associations": [
            {
                "userAttribute": ua,
                "target": t,
                "rights": rng.sample([*HTTP_METHODS, "*r"], rng.randint(1, 3)),
            }
            for ua in UAS
            for t in rng.sample(targets, rng.randint(0, 2))
        ],
        "prohibitions": [
            {
                "name": f"p{i}",
                "subject": rng.choice(UAS),
                "rights": rng.sample(list(HTTP_METHODS), 2),
                "include": [rng.choice(targets)],
            }
            for i in range(rng.randint(0, 2))
        ],
    }
    manifest = {"apiVersion": "gossamer.dev/v1", "kind": "AccessPolicy", "metadata": {"name": "p"}}
    policy = parse_manifest({**manifest, "spec": spec})
    assert isinstance(policy, AccessPolicy)
    return policy


def test_a_virtual_user_is_decided_as_a_user_with_those_attributes() -> None:
    rng = random.Random(7)
    decided = allowed = 0
    for _ in range(60):
        attrs = rng.sample(UAS, rng.randint(1, 3))
        own = rng.sample(UAS, rng.randint(0, 1))
        state = build_state([_policy(rng, sorted(set(attrs) | set(own)), own)], [])
        g, d = state.graph, state.decider
        user = EndUser("jwt:https://idp.example#bob", tuple([*attrs, "no-such-attribute"]))
        for _ in range(40):
            method, path = rng.choice(HTTP_METHODS), rng.choice(PATHS)
            got = decide_end_user(g, d, user, SERVICE, method, path)
            assert got == decide(g, d, "probe", SERVICE, method, path), (attrs, method, path)
            subject = subject_of(g, user)
            assert subject is not None
            target = deciding_target(g, SERVICE, path)
            assert target is not None
            bits = reference.privileges(g, subject, g.id(target))
            assert got == bool(bits & g.rights.bit(method))
            decided += 1
            allowed += got
    assert decided == 2400 and 0.1 < allowed / decided < 0.9


def test_a_user_with_no_node_and_no_known_attribute_holds_nothing() -> None:
    state = build_state([_policy(random.Random(1), ["ua0"], [])], [])
    nobody = EndUser("jwt:https://idp.example#eve", ("not-an-attribute", "svc:default/cart"))
    assert subject_of(state.graph, nobody) is None
    assert not decide_end_user(state.graph, state.decider, nobody, SERVICE, "GET", "/")


def test_claims_map_to_attributes() -> None:
    mapping = {"groups": {"admins": "admins-ua", "staff": "staff-ua"}, "tier": {"1": "gold"}}
    claims = {"groups": ["staff", "admins", "other", {"x": 1}], "tier": 1, "sub": "bob"}
    assert claim_attributes(claims, mapping) == ("admins-ua", "gold", "staff-ua")
    assert claim_attributes({"groups": "staff"}, mapping) == ("staff-ua",)
    assert claim_attributes({}, mapping) == ()
