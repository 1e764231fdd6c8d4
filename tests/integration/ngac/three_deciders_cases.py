"""Random graphs and requests for ``test_three_deciders.py``: reviews with nested prefix
attributes, several policy classes, prohibitions (inclusion and exclusion containers),
several caller identities and JWT end users whose claims map to user attributes; raw paths
with the variants Envoy normalises (``//``, ``.``/``..``, ``%2F``, ``%5C``, ``\\``,
``%61``-style escapes, trailing slashes, query strings)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from tests.integration.agent.mtls_mesh import TD

from gossamer.authz.rights import HTTP_METHODS
from gossamer.types import spiffe_id

ISSUER = "https://idp.shop.example"
REVIEWS = ("default", "reviews")
ROOT = "svc:default/reviews"
#: callers with a node in every graph; STRANGER has a mesh certificate and no node
CALLERS = [spiffe_id(TD, "default", n) for n in ("web", "cron", "other", "batch", "ops")]
STRANGER = spiffe_id(TD, "default", "nobody")
PREFIXES = ["/a", "/a/b", "/a/b/c", "/api", "/api/v1", "/admin", "/x~y", "/b-x", "/a:b"]
SEGMENTS = ["a", "b", "c", "api", "v1", "admin", "adminx", "x~y", "b-x", "a:b", "d", "%61",
            "%41pi", "%2e", ".", "..", "", "%7e", "a%2eb"]  # fmt: skip
SEPARATORS = ["/"] * 10 + ["//", "%2F", "%2f", "%5C", "\\", "/./", "/zz/../"]
QUERIES = ["?q=1", "?x=/admin", "?a=%2F..", "?", "?/a/b"]
#: what goes through Envoy (HEAD and CONNECT answers have no body to read)
WIRE_METHODS = [m for m in HTTP_METHODS if m not in ("HEAD", "CONNECT")]
CLAIMS = {"groups": {"customers": "customers", "staff": "staff"}}
SUBJECTS = ["bob", "alice", "carol"]
RIGHTS = [*HTTP_METHODS, "*r"]


@dataclass(frozen=True, slots=True)
class Request:
    caller: str
    method: str
    #: as a client sends it
    raw: str
    #: a verified token's payload (as jwt_authn hands it to ext_authz), or None
    payload: dict[str, Any] | None = None


def mesh_yaml(jwks: str) -> str:
    """Mesh (strict mTLS, enforce, the issuer), web and reviews."""
    issuer = {
        "issuer": ISSUER,
        "audiences": ["shop"],
        "jwks": {"inline": jwks},
        "claimsToAttributes": CLAIMS,
    }
    mesh = {
        "apiVersion": "gossamer.dev/v1",
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {
            "trustDomain": TD,
            "mtls": {"mode": "strict"},
            "authorization": {"mode": "enforce"},
            "authentication": {"jwt": [issuer]},
        },
    }
    services = [
        {
            "apiVersion": "gossamer.dev/v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": port}]},
        }
        for name, port in (("web", 8080), ("reviews", 9080))
    ]
    return "\n---\n".join(json.dumps(d) for d in [mesh, *services])


def policy(rng: random.Random) -> tuple[str, list[str]]:
    """A random AccessPolicy (JSON, which is YAML) and the prefixes it gives reviews."""
    pcs = ["shop"] if rng.random() < 0.5 else ["shop", "zone"]
    uas: dict[str, list[str]] = {f"ua{i}": [rng.choice(pcs)] for i in range(4)}
    uas["ua3"] = ["ua0"]  # nested
    uas["customers"], uas["staff"] = [rng.choice(pcs)], ["ua1"]
    oas: dict[str, list[str]] = {"apis": ["shop"], ROOT: ["apis"]}
    if len(pcs) > 1:
        oas["zone-a"] = ["zone"]
        oas[ROOT].append("zone-a")
    prefixes = sorted(rng.sample(PREFIXES, rng.randint(3, len(PREFIXES))))
    for p in prefixes:  # shortest first: a prefix may sit under one that covers it
        under = [q for q in prefixes if q != p and p.startswith(q + "/") and f"{ROOT}:{q}" in oas]
        oas[f"{ROOT}:{p}"] = (
            [f"{ROOT}:{rng.choice(under)}"] if under and rng.random() < 0.6 else [ROOT]
        )
    targets = ["apis", ROOT, *(f"{ROOT}:{p}" for p in prefixes)]
    users = {
        c: rng.sample(sorted(set(uas) - {"customers", "staff"}), rng.randint(1, 2)) for c in CALLERS
    }
    users[f"jwt:{ISSUER}#bob"] = ["ua2"]  # an end user with a node of its own
    associations = [
        {"userAttribute": ua, "target": t, "rights": rng.sample(RIGHTS, rng.randint(1, 3))}
        for ua in uas
        for t in rng.sample(targets, rng.randint(1, 3))
    ]
    if len(pcs) > 1:  # the second class grants something too, or nothing passes it
        associations.append(
            {"userAttribute": rng.choice(list(uas)), "target": "zone-a", "rights": ["*r"]}
        )
        associations.append({"userAttribute": "ua0", "target": "zone-a", "rights": ["GET", "POST"]})
    prohibitions = []
    for i in range(rng.randint(1, 4)):
        prohibition: dict[str, Any] = {
            "name": f"p{i}",
            "subject": rng.choice([*uas, *CALLERS[:2]]),
            "rights": rng.sample(list(HTTP_METHODS), rng.randint(1, 4)),
            "conjunctive": rng.random() < 0.3,
        }
        prohibition["include" if rng.random() < 0.8 else "exclude"] = rng.sample(
            targets[1:], rng.randint(1, 2)
        )
        prohibitions.append(prohibition)
    doc = {
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
    return json.dumps(doc), prefixes


def raw_path(rng: random.Random) -> str:
    path = (
        "".join(
            ("/" if i == 0 else rng.choice(SEPARATORS)) + rng.choice(SEGMENTS)
            for i in range(rng.randint(0, 4))
        )
        or "/"
    )
    if rng.random() < 0.15:
        path += "/"
    if rng.random() < 0.2:
        path += rng.choice(QUERIES)
    return path


def request(rng: random.Random, methods: list[str] = list(HTTP_METHODS)) -> Request:  # noqa: B006
    payload = None
    if rng.random() < 0.3:
        groups = rng.sample(["customers", "staff", "visitors"], rng.randint(0, 2))
        payload = {"iss": ISSUER, "sub": rng.choice(SUBJECTS), "aud": "shop", "groups": groups}
    caller = rng.choice([*CALLERS, STRANGER])
    return Request(caller, rng.choice(methods), raw_path(rng), payload)
