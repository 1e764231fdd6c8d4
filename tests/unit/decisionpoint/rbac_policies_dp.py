"""Random AccessPolicies over services with nested path prefix attributes, for the decision
point's tests."""

from __future__ import annotations

import random

from gossamer.authz.rights import HTTP_METHODS
from gossamer.model import parse_manifest
from gossamer.model.access_policy import AccessPolicy

TD = "shop.local"
USERS = [f"spiffe://{TD}/ns/default/sa/u{i}" for i in range(5)] + ["jwt:https://idp.example#bob"]
PREFIXES = ["/a", "/a/b", "/b"]


def random_policy(rng: random.Random, services: list[tuple[str, str]]) -> AccessPolicy:
    uas = {"ua0": ["pc"], "ua1": ["pc"], "ua2": ["ua0"], "ua3": ["pc"]}
    oas: dict[str, list[str]] = {"apis": ["pc"]}
    targets = ["apis"]
    for ns, svc in services:
        root = f"svc:{ns}/{svc}"
        oas[root] = ["apis"]
        targets.append(root)
        for prefix in rng.sample(PREFIXES, rng.randint(0, 3)):
            oas[f"{root}:{prefix}"] = [root]
            targets.append(f"{root}:{prefix}")
    users = {u: rng.sample(sorted(uas), rng.randint(1, 2)) for u in USERS}
    associations = [
        {"userAttribute": ua, "target": t, "rights": rng.sample([*HTTP_METHODS, "*r"], 2)}
        for ua in uas
        for t in rng.sample(targets, rng.randint(1, 3))
    ]
    prohibitions = [
        {
            "name": f"p{i}",
            "subject": rng.choice([*uas, USERS[0], USERS[-1]]),
            "rights": rng.sample(list(HTTP_METHODS), 3),
            "include": [rng.choice(targets)],
        }
        for i in range(rng.randint(0, 2))
    ]
    spec = {
        "policyClasses": ["pc"],
        "userAttributes": uas,
        "objectAttributes": oas,
        "users": users,
        "associations": associations,
        "prohibitions": prohibitions,
    }
    policy = parse_manifest(
        {
            "apiVersion": "gossamer.dev/v1",
            "kind": "AccessPolicy",
            "metadata": {"name": "r"},
            "spec": spec,
        }
    )
    assert isinstance(policy, AccessPolicy)
    return policy
