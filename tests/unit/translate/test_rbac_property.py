"""On random graphs, the compiled route table (read back by ``testing.rbac_eval``) decides
every random (caller, method, path) request as the engine does (``authz.requests.decide``):
12,000 requests over 40 graphs with nested prefix attributes, wildcards, several policy
classes and prohibitions (inclusion and exclusion containers)."""

from __future__ import annotations

import random

from gossamer.authz.engine import build_state
from gossamer.authz.requests import decide
from gossamer.authz.rights import HTTP_METHODS
from gossamer.authz.service_access import ServiceAccessCompiler
from gossamer.model import parse_manifest
from gossamer.model.access_policy import AccessPolicy
from gossamer.testing.rbac_eval import evaluate
from gossamer.translate.rbac import enforced_routes
from gossamer.translate.routes import inbound_routes

TD = "shop.local"
SERVICES = [("default", "cart"), ("default", "orders"), ("team-a", "cart")]
PREFIXES = ["/a", "/a/b", "/a/b/c", "/b", "/b-x", "/api/v1"]
PATHS = [
    "/", "/a", "/a/", "/a/b", "/a/b/c/d", "/a/bc", "/a-b", "/b", "/b-x", "/b-x/1", "/b/x",
    "/api", "/api/v1", "/api/v1/z?q=/a", "/api/v10", "/c",
]  # fmt: skip
USERS = [f"spiffe://{TD}/ns/default/sa/u{i}" for i in range(6)] + ["jwt:issuer#bob"]
RIGHTS = [*HTTP_METHODS, "*r"]


def _policy(rng: random.Random) -> AccessPolicy:
    pcs = ["pc1"] if rng.random() < 0.6 else ["pc1", "pc2"]
    uas = {f"ua{i}": [rng.choice(pcs)] for i in range(4)}
    uas["ua3"] = ["ua0"]  # a nested attribute
    oas: dict[str, list[str]] = {"apis": [pcs[0]]}
    if len(pcs) > 1:
        oas["zone"] = ["pc2"]
    targets = ["apis"]
    for ns, svc in SERVICES:
        root = f"svc:{ns}/{svc}"
        oas[root] = ["apis"] + (["zone"] if len(pcs) > 1 and rng.random() < 0.7 else [])
        targets.append(root)
        made = []
        for prefix in rng.sample(PREFIXES, rng.randint(0, len(PREFIXES))):
            name = f"{root}:{prefix}"
            # under the service, or nested under an existing prefix it extends
            under = [m for m in made if prefix.startswith(m.split(":", 2)[2] + "/")]
            oas[name] = [rng.choice(under)] if under and rng.random() < 0.5 else [root]
            made.append(name)
            targets.append(name)
    users = {u: rng.sample(list(uas), rng.randint(1, 2)) for u in USERS}
    associations = []
    for ua in uas:
        for t in rng.sample(targets, rng.randint(1, 4)):
            associations.append(
                {"userAttribute": ua, "target": t, "rights": rng.sample(RIGHTS, rng.randint(1, 3))}
            )
    prohibitions = []
    for i in range(rng.randint(0, 3)):
        subject = rng.choice([*uas, *USERS[:3]])
        containers = rng.sample(targets, rng.randint(1, 2))
        spec: dict[str, object] = {
            "name": f"p{i}",
            "subject": subject,
            "rights": rng.sample(list(HTTP_METHODS), rng.randint(1, 3)),
            "conjunctive": rng.random() < 0.3,
        }
        if rng.random() < 0.8:
            spec["include"] = containers
        else:
            spec["exclude"] = containers
        prohibitions.append(spec)
    manifest = {
        "apiVersion": "gossamer.dev/v1",
        "kind": "AccessPolicy",
        "metadata": {"name": "random"},
        "spec": {
            "policyClasses": pcs,
            "userAttributes": uas,
            "objectAttributes": oas,
            "users": users,
            "associations": associations,
            "prohibitions": prohibitions,
        },
    }
    policy = parse_manifest(manifest)
    assert isinstance(policy, AccessPolicy)
    return policy


def test_compiled_rbac_decides_as_the_engine_on_random_requests() -> None:
    rng = random.Random(1111)
    decided = denied = 0
    for _ in range(40):
        state = build_state([_policy(rng)], [])
        compiler = ServiceAccessCompiler(state.decider)
        tables = {
            ref: enforced_routes(inbound_routes("inbound|http", "inbound|http"), "enforce", acl)
            for ref, acl in compiler.compile_all(SERVICES).items()
        }
        for _ in range(300):
            ref = rng.choice(SERVICES)
            user = rng.choice([*USERS, f"spiffe://{TD}/ns/default/sa/nobody"])
            method, path = rng.choice(HTTP_METHODS), rng.choice(PATHS)
            expected = decide(state.graph, state.decider, user, ref, method, path)
            got = evaluate(tables[ref], user, method, path)
            wanted = "allow" if expected and user.startswith("spiffe://") else "deny"
            assert got.outcome == wanted, (ref, user, method, path, got)
            decided += 1
            denied += got.outcome == "deny"
    assert decided == 12_000
    assert 0.2 < denied / decided < 0.95  # both answers are well represented
