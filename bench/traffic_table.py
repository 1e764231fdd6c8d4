"""The route table and policies ``traffic_overhead.py`` measures, as Gossamer resources.

One east-west Route for service ``shop`` with 29 rules, shaped like a real service's: a
dozen versioned API prefixes with rewrites, per-tenant header matches to a subset, regex
paths with regex rewrites, redirects and direct responses for retired paths, a method
match, a query-parameter match, and the checkout rule (weighted split v1 90 / v2 10,
retries, timeout, request and response header changes, a local rate limit far above what
the bench sends); then Gossamer's catch-all. A TrafficPolicy gives ``shop`` leastRequest,
a circuit breaker, a retry budget, outlier detection and an inbound rate limit (again far
above the bench's rate). ``static_traffic.py`` writes the same table by hand for Envoy.

Every forwarded rule sets a response header ``x-rule`` naming it, so a client can tell
which rule answered: the bench checks both chains answer every probe alike before it
measures anything.
"""

from __future__ import annotations

from typing import Any

import yaml

TD = "bench.local"  # mtls_chain.identity signs for this trust domain
#: counts of each family of rules (the static table loops over the same counts)
API_RULES, TENANT_RULES, REGEX_RULES, RETIRED = 12, 6, 4, 2
#: far above anything the bench sends: the limits are evaluated, never hit
HUGE_LIMIT = {"requests": 1_000_000, "per": "1s"}

Rule = dict[str, Any]


def api_prefix(i: int) -> str:
    return f"/api/v{i % 3 + 1}/res{i}/"


def rules() -> list[Rule]:
    """The Route's rules, in order (first match wins)."""
    out: list[Rule] = []
    for i in range(API_RULES):
        out.append({
            "name": f"api-{i}",
            "matches": [{"path": {"prefix": api_prefix(i)}}],
            "rewrite": {"prefix": f"/internal/res{i}/"},
            "headers": {"request": {"set": {"x-api-version": f"v{i % 3 + 1}"}},
                        "response": {"set": {"x-rule": f"api-{i}"}}},
            "destinations": [{"service": "shop"}],
            "timeout": "5s",
        })  # fmt: skip
    for i in range(TENANT_RULES):
        out.append({
            "name": f"tenant-{i}",
            "matches": [{"path": {"prefix": "/t/"},
                         "headers": [{"name": "x-tenant", "exact": f"tenant-{i}"}]}],
            "headers": {"response": {"set": {"x-rule": f"tenant-{i}"}}},
            "destinations": [{"service": "shop", "subset": {"version": "v2"}}],
        })  # fmt: skip
    for i in range(REGEX_RULES):
        out.append({
            "name": f"orders-{i}",
            "matches": [{"path": {"regex": f"/users/[0-9]+/orders{i}"}}],
            "rewrite": {"regex": {"pattern": f"^/users/([0-9]+)/orders{i}$",
                                  "substitution": f"/orders{i}/\\1"}},
            "headers": {"response": {"set": {"x-rule": f"orders-{i}"}}},
            "destinations": [{"service": "shop"}],
        })  # fmt: skip
    for i in range(RETIRED):
        out.append(
            {
                "name": f"moved-{i}",
                "matches": [{"path": {"prefix": f"/old{i}/"}}],
                "redirect": {"prefix": f"/new{i}/", "status": 301},
            }
        )
        out.append(
            {
                "name": f"gone-{i}",
                "matches": [{"path": {"exact": f"/legacy{i}"}}],
                "directResponse": {"status": 410, "body": "gone"},
            }
        )
    out.append(
        {
            "name": "upload",
            "matches": [{"path": {"prefix": "/upload"}, "method": "POST"}],
            "headers": {"response": {"set": {"x-rule": "upload"}}},
            "destinations": [{"service": "shop"}],
            "timeout": "60s",
            "retries": {"attempts": 0},
        }
    )
    out.append({
        "name": "search-debug",
        "matches": [{"path": {"prefix": "/search"},
                     "queryParams": [{"name": "debug", "exact": "1"}]}],
        "headers": {"request": {"set": {"x-debug": "1"}},
                    "response": {"set": {"x-rule": "search-debug"}}},
        "destinations": [{"service": "shop"}],
    })  # fmt: skip
    out.append(CHECKOUT)
    return out


CHECKOUT: Rule = {
    "name": "checkout",
    "matches": [{"path": {"prefix": "/shop/"}}],
    "destinations": [
        {"service": "shop", "subset": {"version": "v1"}, "weight": 90},
        {"service": "shop", "subset": {"version": "v2"}, "weight": 10},
    ],
    "timeout": "3s",
    "retries": {"attempts": 2, "perTryTimeout": "1s",
                "retryOn": ["connect-failure", "refused-stream", "5xx"]},
    "headers": {
        "request": {"set": {"x-checkout": "1"}, "add": {"x-trace-tag": "checkout"},
                    "remove": ["x-internal-debug"]},
        "response": {"set": {"x-rule": "checkout"}},
    },
    "rateLimit": HUGE_LIMIT,
}  # fmt: skip

POLICY: dict[str, Any] = {
    "service": "shop",
    "loadBalancer": {"algorithm": "leastRequest"},
    "circuitBreaker": {"maxConnections": 1000, "maxPendingRequests": 1000, "maxRequests": 1000},
    "retryBudget": {"percent": 20, "minConcurrency": 3},
    "outlierDetection": {"consecutive5xx": 5, "interval": "10s", "baseEjectionTime": "30s",
                         "maxEjectionPercent": 50},
    "rateLimit": HUGE_LIMIT,
}  # fmt: skip

#: what the load generator sends, in turn: every request is forwarded to the backend (200);
#: checkout twice (the busiest rule of a shop, and the last before the catch-all)
MIX: tuple[tuple[str, dict[str, str]], ...] = (
    ("/shop/cart", {}),
    ("/api/v2/res4/item", {}),
    ("/t/profile", {"x-tenant": "tenant-3"}),
    ("/shop/checkout", {"x-internal-debug": "1"}),
    ("/users/42/orders2", {}),
    ("/search?debug=1&q=x", {}),
    ("/catalog/item/7", {}),
)
#: what both chains must answer alike (status, x-rule, location, body) before measuring
PROBES: tuple[tuple[str, dict[str, str]], ...] = (
    *MIX,
    ("/api/v1/res9/x", {}),
    ("/t/profile", {"x-tenant": "tenant-9"}),
    ("/users/abc/orders2", {}),
    ("/old1/page", {}),
    ("/legacy0", {}),
    ("/legacy0/x", {}),
    ("/search?debug=0", {}),
    ("/upload", {}),
)


def manifests() -> str:
    docs: list[dict[str, Any]] = [
        # strict, as the static chain is: its callees refuse plaintext, so every measured
        # request crossed mTLS (permissive would let a caller without its certificate yet
        # talk plaintext through the warm-up and the measurement)
        {"kind": "Mesh", "metadata": {"name": "default"},
         "spec": {"trustDomain": TD, "mtls": {"mode": "strict"}}},
        {"kind": "Service", "metadata": {"name": "caller"},
         "spec": {"ports": [{"name": "http", "port": 8080}]}},
        {"kind": "Service", "metadata": {"name": "shop"},
         "spec": {"ports": [{"name": "http", "port": 9080}]}},
        {"kind": "Route", "metadata": {"name": "shop"},
         "spec": {"service": "shop", "rules": rules()}},
        {"kind": "TrafficPolicy", "metadata": {"name": "shop"}, "spec": POLICY},
    ]  # fmt: skip
    return yaml.safe_dump_all(
        [{"apiVersion": "gossamer.dev/v1", **d} for d in docs], sort_keys=False
    )
