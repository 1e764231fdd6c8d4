"""Route rules and TrafficPolicies as ``gossamer describe`` shows them: each rule's
matches, then its effects in the order a proxy applies them (docs/resources.md, "Order of
effects"): the rate limit, the fault, then the route itself (a redirect or direct
response, or the rewrite, request headers, the split, timeout, retries and mirror), then
the response headers. Plain data (the rule's own manifest besides), so the API answers it
as JSON and the CLI prints the lines.
"""

from __future__ import annotations

from typing import Any

from gossamer.model.route import Destination, HeaderMatch, Match, Route, Rule
from gossamer.model.route_actions import HeaderChanges, Mirror
from gossamer.model.traffic_policy import DEFAULT_RETRY_BUDGET, TrafficPolicy

Ref = tuple[str, str]


def _target(d: Destination | Mirror, namespace: str) -> str:
    where = f"{d.namespace}/" if d.namespace and d.namespace != namespace else ""
    port = f":{d.port}" if d.port else ""
    subset = ",".join(f"{k}={v}" for k, v in sorted(d.subset.items()))
    return f"{where}{d.service}{port}" + (f"{{{subset}}}" if subset else "")


def _header(h: HeaderMatch) -> str:
    if h.exact is not None:
        text = f"header {h.name} = {h.exact!r}"
    elif h.prefix is not None:
        text = f"header {h.name} starts with {h.prefix!r}"
    elif h.regex is not None:
        text = f"header {h.name} ~ /{h.regex}/"
    else:
        text = f"header {h.name} {'present' if h.present else 'absent'}"
    return f"not ({text})" if h.invert else text


def match_text(m: Match) -> str:
    """One match, its parts joined with ``and``."""
    p = m.path
    if p.exact is not None:
        parts = [f"path = {p.exact}"]
    elif p.regex is not None:
        parts = [f"path ~ /{p.regex}/"]
    else:
        parts = [f"path prefix {p.prefix}"]
    if m.method:
        parts.append(f"method {m.method}")
    parts += [_header(h) for h in m.headers]
    for q in m.queryParams:
        if q.exact is not None:
            parts.append(f"query {q.name} = {q.exact!r}")
        elif q.regex is not None:
            parts.append(f"query {q.name} ~ /{q.regex}/")
        else:
            parts.append(f"query {q.name} present")
    return " and ".join(parts)


def _changes(which: str, c: HeaderChanges | None) -> list[str]:
    if c is None:
        return []
    parts = [f"set {k}: {v}" for k, v in c.set.items()]
    parts += [f"add {k}: {v}" for k, v in c.add.items()]
    parts += [f"remove {k}" for k in c.remove]
    return [f"{which} headers: {'; '.join(parts)}"] if parts else []


def _seconds(d: Any) -> str:
    ms = round(d.total_seconds() * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def _split(ds: list[Destination], namespace: str) -> str:
    total = sum(d.weight for d in ds)
    if len(ds) == 1:
        return f"forward to {_target(ds[0], namespace)}"
    shares = [f"{_target(d, namespace)} {100 * d.weight / total:g}%" for d in ds]
    return "split: " + ", ".join(shares)


def effects(rule: Rule, namespace: str) -> list[str]:
    """What the rule does to a matching request, in the order a proxy does it."""
    out: list[str] = []
    if rule.rateLimit is not None:
        r = rule.rateLimit
        scope = "shared by every proxy" if r.global_ else "per proxy"
        out.append(f"rate limit: {r.requests} per {_seconds(r.per)} ({scope}), then 429")
    if rule.fault is not None and rule.fault.delay is not None:
        d = rule.fault.delay
        out.append(f"fault: delay {_seconds(d.duration)} for {d.percent:g}% of requests")
    if rule.fault is not None and rule.fault.abort is not None:
        a = rule.fault.abort
        out.append(f"fault: abort with {a.status} for {a.percent:g}% of requests")
    if rule.redirect is not None:
        r2 = rule.redirect
        parts = [
            f"{k} {v}"
            for k, v in (
                ("scheme", r2.scheme),
                ("host", r2.host),
                ("port", r2.port),
                ("path", r2.path),
                ("prefix", r2.prefix),
            )
            if v is not None
        ]
        out.append(f"redirect {r2.status}: {', '.join(parts)}")
    if rule.directResponse is not None:
        body = rule.directResponse.body
        shown = f" body {body[:40]!r}{'...' if len(body) > 40 else ''}" if body else ""
        out.append(f"answer {rule.directResponse.status}{shown}")
    if rule.rewrite is not None:
        w = rule.rewrite
        if w.prefix is not None:
            out.append(f"rewrite: matched prefix -> {w.prefix}")
        if w.regex is not None:
            out.append(f"rewrite: /{w.regex.pattern}/ -> {w.regex.substitution}")
        if w.host is not None:
            out.append(f"rewrite: host -> {w.host}")
    out += _changes("request", rule.headers.request if rule.headers else None)
    if rule.destinations:
        out.append(_split(rule.destinations, namespace))
    if rule.timeout is not None:
        out.append(f"timeout {_seconds(rule.timeout)}")
    if rule.retries is not None:
        rt = rule.retries
        per_try = f", {_seconds(rt.perTryTimeout)} each" if rt.perTryTimeout else ""
        codes = f" {rt.statusCodes}" if rt.statusCodes else ""
        out.append(f"retries: {rt.attempts}{per_try} on {', '.join(rt.retryOn)}{codes}")
    if rule.mirror is not None:
        m = rule.mirror
        out.append(f"mirror {m.percent:g}% to {_target(m, namespace)} (answers discarded)")
    out += _changes("response", rule.headers.response if rule.headers else None)
    return out


def rule_view(route: Route, index: int, rule: Rule, manifest: dict[str, Any]) -> dict[str, Any]:
    """One rule: where it comes from, its matches (any may hold) and its effects."""
    ns = route.metadata.namespace
    return {
        "route": f"{ns}/{route.metadata.name}",
        "index": index,
        "name": rule.name,
        "matches": [match_text(m) for m in rule.matches],
        "effects": effects(rule, ns),
        "spec": manifest,
    }


def rules_of(route: Route) -> list[dict[str, Any]]:
    """Every rule of ``route``, in its order."""
    manifests = route.to_manifest()["spec"]["rules"]
    return [rule_view(route, i, rule, manifests[i]) for i, rule in enumerate(route.spec.rules)]


def _flat(value: Any, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _flat(v, f"{path}.{k}" if path else k)]
    return [f"{path}={value}"]


def policy_view(policy: TrafficPolicy) -> dict[str, Any]:
    """A TrafficPolicy: its subset (``{}``: the whole service) and each setting in a line."""
    spec = policy.to_manifest()["spec"]
    settings = [
        f"{field}: {', '.join(_flat(value)) if isinstance(value, dict) else value}"
        for field, value in spec.items()
        if field not in ("service", "subset")
    ]
    if policy.spec.retryBudget is None and not (
        policy.spec.circuitBreaker and policy.spec.circuitBreaker.maxRetries is not None
    ):
        percent, least = DEFAULT_RETRY_BUDGET
        settings.append(f"retryBudget: percent={percent}, minConcurrency={least} (the default)")
    return {
        "namespace": policy.metadata.namespace,
        "name": policy.metadata.name,
        "subset": dict(sorted(policy.spec.subset.items())),
        "settings": settings,
        "spec": spec,
    }
