"""Why a request to a meshed service was (or would be) denied, on the graph as it is now:
``gossamer authz why REQUEST-ID`` (docs/ngac.md, "The audit trail of requests").

The request is decided on the attribute ``requests.deciding_target`` picks for its path
(the deepest existing prefix attribute, else the service's); the explanation is the engine's
``explain`` of the caller (or the end user) on that attribute: per policy class, the graph
paths from the attribute to the policy class with the associations the user reaches on
them, and the prohibitions that removed rights. ``rule`` says it in one line.
"""

from __future__ import annotations

from typing import Any

from gossamer.authz.elements import Kind
from gossamer.authz.explain import explain
from gossamer.authz.graph import Graph
from gossamer.authz.requests import deciding_target


def _service(service: str) -> tuple[str, str] | None:
    ns, sep, name = service.partition("/")
    return (ns, name) if sep and ns and name and "/" not in name else None


def explain_request(
    graph: Graph, user: str, service: str, method: str, path: str
) -> dict[str, Any]:
    """``{"user", "target", "method", "allowed", "rule", "explanation"}``: whether ``user``
    holds ``method`` on the attribute deciding ``path`` of ``service`` now, and why
    (``explanation`` is ``Explanation.to_data()``, None when there is nothing to explain:
    no such user or attribute)."""
    out: dict[str, Any] = {
        "user": user,
        "target": None,
        "method": method,
        "allowed": False,
        "rule": "",
        "explanation": None,
    }
    ref = _service(service)
    if not user:
        out["rule"] = "no verified caller: the request carried no certificate the mesh trusts"
        return out
    if ref is None:
        out["rule"] = f"{service!r} is not a service (NAMESPACE/NAME)"
        return out
    target = deciding_target(graph, ref, path)
    out["target"] = target
    if target is None:
        out["rule"] = (
            f"{service} has no attribute in the graph (svc:{service}): nothing is granted on it"
        )
        return out
    node = graph.find(user)
    if node is None or graph.kind(node) != Kind.U:
        out["rule"] = f"{user} is no user in the graph: nothing is granted to it"
        return out
    if method not in graph.rights.resource_rights:
        out["rule"] = f"{method!r} is not a right of the graph: nothing grants it"
        return out
    why = explain(graph, user, target)
    allowed = method in why.rights or "*" in why.rights
    out["allowed"] = allowed
    out["explanation"] = why.to_data()
    out["rule"] = _rule(why.rights, why.prohibitions, why.policyClasses, target, method, allowed)
    return out


def _rule(
    rights: list[str],
    prohibitions: dict[str, list[str]],
    classes: list[Any],
    target: str,
    method: str,
    allowed: bool,
) -> str:
    if allowed:
        pcs = ", ".join(pc.policyClass for pc in classes)
        return f"{method} granted on {target} in every policy class containing it ({pcs})"
    removed = sorted(name for name, denied in prohibitions.items() if method in denied)
    if removed:
        return f"{method} on {target} prohibited by {', '.join(removed)}"
    missing = [pc.policyClass for pc in classes if method not in pc.rights]
    if missing:
        return f"no association grants {method} on {target} in policy class {', '.join(missing)}"
    return f"{target} is in no policy class: nothing is granted on it"
