"""A generated mesh policy for the enforcement benchmarks (``bench/ngac_compile.py``): N
services, each the object attribute ``svc:default/sK`` (every tenth with a path prefix
attribute ``:/admin`` and a prohibition on it), and M service identities
``spiffe://bench.local/ns/default/sa/idI`` in teams under departments.

Shape (seed fixed): teams of ~50 identities (every third identity also in a second team),
10 departments above them; services in groups of 20; each team holds 1-3 methods on 2
groups, each department GET on one group, and each service grants PATCH to a pair of teams
of its own (so no two services' lists are equal). A service's lists then hold ~700 identities
at 1000 x 10k: access lists with hundreds of callers each, as a shared platform's would.
"""

from __future__ import annotations

import random
from typing import Any

from gossamer.model import parse_manifest
from gossamer.model.access_policy import AccessPolicy

TD = "bench.local"
NS = "default"
API = "gossamer.dev/v1"
METHODS = ("GET", "POST", "PUT", "DELETE")
#: the identity the one-edge changes move (no workload: only callee lists change)
MOVER = f"spiffe://{TD}/ns/{NS}/sa/mover"
#: the team whose grant reaches the watched services, and one that reaches nothing
ON_TEAM, OFF_TEAM = "watchers", "idle"
WATCHED_GROUP = "watched"


def identity(i: int) -> str:
    return f"spiffe://{TD}/ns/{NS}/sa/id{i}"


def service(k: int) -> str:
    return f"s{k}"


def policy_spec(services: int, identities: int, watched: int = 0, seed: int = 1) -> dict[str, Any]:
    """The base policy's spec; the first ``watched`` services are also in the group the
    team ``watchers`` holds GET on (the one-edge changes move ``MOVER`` into it and out)."""
    rng = random.Random(seed)
    teams = [f"t{i}" for i in range(max(2, identities // 50))]
    depts = [f"d{i}" for i in range(10)]
    groups = [f"g{i}" for i in range(max(1, services // 20))]
    uas: dict[str, list[str]] = {d: ["mesh"] for d in depts}
    uas |= {t: [depts[i % len(depts)]] for i, t in enumerate(teams)}
    uas |= {ON_TEAM: ["mesh"], OFF_TEAM: ["mesh"]}
    oas: dict[str, list[str]] = {g: ["mesh"] for g in groups}
    oas[WATCHED_GROUP] = ["mesh"]
    prohibitions = []
    for k in range(services):
        svc = f"svc:{NS}/{service(k)}"
        oas[svc] = [groups[k % len(groups)], *([WATCHED_GROUP] if k < watched else [])]
        if k % 10 == 0:
            oas[f"{svc}:/admin"] = [svc]
            prohibitions.append(
                {
                    "name": f"no-admin-{k}",
                    "subject": rng.choice(teams),
                    "rights": ["POST", "DELETE"],
                    "include": [f"{svc}:/admin"],
                }
            )
    users = {identity(i): [teams[i % len(teams)]] for i in range(identities)}
    for i in range(0, identities, 3):
        users[identity(i)].append(teams[(i * 7 + 1) % len(teams)])
    users[MOVER] = [OFF_TEAM]
    associations = []
    for t in teams:
        for g in rng.sample(groups, min(2, len(groups))):
            rights = rng.sample(METHODS, rng.randint(1, 3))
            associations.append({"userAttribute": t, "target": g, "rights": rights})
    for d in depts:
        associations.append({"userAttribute": d, "target": rng.choice(groups), "rights": ["GET"]})
    for k in range(services):  # and two teams of its own: no two services' lists are equal
        for t in (teams[k % len(teams)], teams[(k // len(teams) + 1) % len(teams)]):
            associations.append(
                {"userAttribute": t, "target": f"svc:{NS}/{service(k)}", "rights": ["PATCH"]}
            )
    associations.append({"userAttribute": ON_TEAM, "target": WATCHED_GROUP, "rights": ["GET"]})
    return {
        "policyClasses": ["mesh"],
        "userAttributes": uas,
        "objectAttributes": oas,
        "users": users,
        "associations": associations,
        "prohibitions": prohibitions,
    }


def policy_manifest(spec: dict[str, Any], name: str = "bench") -> dict[str, Any]:
    return {"apiVersion": API, "kind": "AccessPolicy", "metadata": {"name": name}, "spec": spec}


def access_policy(services: int, identities: int, watched: int = 0) -> AccessPolicy:
    found = parse_manifest(policy_manifest(policy_spec(services, identities, watched)))
    assert isinstance(found, AccessPolicy)
    return found


def mesh_manifests(services: int, mode: str = "enforce") -> list[dict[str, Any]]:
    """The Mesh (``mode`` everywhere, strict mTLS) and ``services`` HTTP services with one
    workload each on 127.1.x.y."""
    out: list[dict[str, Any]] = [
        {
            "apiVersion": API,
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"trustDomain": TD, "authorization": {"mode": mode}},
        }
    ]
    for k in range(services):
        name = service(k)
        out.append(
            {
                "apiVersion": API,
                "kind": "Service",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"ports": [{"name": "http", "port": 9080}]},
            }
        )
        out.append(
            {
                "apiVersion": API,
                "kind": "Workload",
                "metadata": {"name": f"{name}-1", "namespace": NS},
                "spec": {
                    "service": name,
                    "address": f"127.1.{k // 250}.{k % 250 + 1}",
                    "ports": [{"port": 15001, "appPort": 19080}],
                },
            }
        )
    return out
