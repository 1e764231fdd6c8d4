"""The REST API as NGAC objects: what an operator token may read, apply and delete, per
namespace and kind, decided by the same engine as everything else (docs/ngac.md, "The API
under NGAC").

The graph (every name fixed here):

- ``gossamer:api`` (object attribute under ``PM_ADMIN:base``): the API;
- ``api:kind/<Kind>`` (OA under ``gossamer:api``): one per public kind;
- ``api:ns/<namespace>`` (OA under ``gossamer:api``): one per namespace someone was given
  rights in (``token create --operator --namespace``), or that an administrator made;
- ``api:<namespace>/<Kind>`` (object under ``api:ns/<namespace>`` and ``api:kind/<Kind>``):
  what a request on that namespace's resources of that kind is decided on, so a grant on
  the namespace, on the kind, or above both reaches it, and a prohibition on either denies;
- mesh-wide kinds (``Mesh``, ``AccessPolicy``) have no per-namespace object: they are
  decided on ``api:kind/<Kind>``, which no namespace grant reaches;
- ``gossamer:namespaces`` (user attribute under ``PM_ADMIN``, administered by
  ``gossamer:admins``) holds ``api:ns/<namespace>:<right>`` user attributes, each holding
  that one right on ``api:ns/<namespace>``; a namespaced token's user is assigned to them;
- ``gossamer:authz-graph`` and ``gossamer:authz-decisions`` (OAs under ``gossamer:api``):
  the graph document decision points decide with (``GET /v1/authz/graph``) and the audit
  trail they report to (``POST /v1/authz/decisions``); ``gossamer:decision-points`` (UA
  under ``PM_ADMIN``, administered by ``gossamer:admins``) holds ``GET`` on the first and
  ``POST`` on the second and nothing else: a decision point's token user is assigned to it.

Rights: ``read`` (get, list, validate), ``apply``, ``delete``, which the engine keeps among
its resource rights whatever an AccessPolicy says (``authz.rights.CONTROL_PLANE_RIGHTS``).
A namespace without an ``api:ns`` attribute holds no grant of its own, so its requests are
decided on the kind's attribute, which is exactly what its object would answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from gossamer.authz.elements import ADMIN_BASE, ADMIN_PC
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.graph import Graph
from gossamer.authz.rights import API_READ, API_RIGHTS
from gossamer.errors import GossamerError
from gossamer.model.access_commands import parse_commands
from gossamer.model.catalog import PUBLIC_KINDS

log = logging.getLogger(__name__)

#: the NGAC object attribute standing for the control plane's REST API
API_OBJECT = "gossamer:api"
#: the user attribute of read-only tokens (``GET`` and ``read`` on ``API_OBJECT``)
READERS = "gossamer:readers"
#: the user attribute of the bootstrap administrator and of operator tokens
ADMINS = "gossamer:admins"
#: the user attribute holding the per-namespace, per-right user attributes
NAMESPACES = "gossamer:namespaces"
#: what ``GET /v1/authz/graph`` is decided on (readers and admins reach it through the API)
GRAPH_OBJECT = "gossamer:authz-graph"
#: what ``POST /v1/authz/decisions`` (a decision point's report) is decided on
DECISIONS_OBJECT = "gossamer:authz-decisions"
#: the user attribute of decision points' tokens: the graph's GET and the report's POST only
DECISION_POINTS = "gossamer:decision-points"
#: the NGAC user of the first token (the engine's bootstrap administrator)
ADMIN_USER = "admin"
#: the right a cluster-wide request that changes nothing needs on ``API_OBJECT``
READ_RIGHT = "GET"
#: kinds that are the whole mesh's, not a namespace's: no namespace grant reaches them
MESH_WIDE_KINDS: frozenset[str] = frozenset({"Mesh", "AccessPolicy"})


def kind_attribute(kind: str) -> str:
    return f"api:kind/{kind}"


def namespace_attribute(namespace: str) -> str:
    return f"api:ns/{namespace}"


def namespace_users(namespace: str, right: str) -> str:
    """The user attribute holding ``right`` on ``namespace`` (a token's user's parent)."""
    return f"api:ns/{namespace}:{right}"


def resource_object(namespace: str, kind: str) -> str:
    """The NGAC node a request on ``namespace``'s resources of ``kind`` is decided on."""
    if kind in MESH_WIDE_KINDS:
        return kind_attribute(kind)
    return f"api:{namespace}/{kind}"


def _namespaced_kinds() -> list[str]:
    return [k for k in PUBLIC_KINDS if k not in MESH_WIDE_KINDS]


@dataclass(frozen=True, slots=True)
class ApiDecision:
    """One decision on (user, right, namespace, kind)."""

    allowed: bool
    right: str
    namespace: str
    kind: str
    #: the NGAC node it was decided on
    target: str
    #: the API rights the user holds there
    holds: tuple[str, ...]
    #: when denied, NGAC's reason (the prohibition, or the policy class without a grant)
    why: str = ""


def _granted(graph: Graph, ua: str, target: str) -> set[str]:
    u, t = graph.find(ua), graph.find(target)
    if u is None or t is None:
        return set()
    return set(graph.rights.names(graph.assoc_out.get(u, {}).get(t, 0)))


def bootstrap_commands(graph: Graph) -> list[dict[str, object]]:
    """What the graph lacks of the API's nodes (the admins' and readers' attributes exist):
    ``gossamer:api``, readers holding ``GET`` and ``read``, the kinds' attributes, the
    namespaces' container, and the objects of kinds added since a namespace was made."""
    out: list[dict[str, object]] = []
    if graph.find(API_OBJECT) is None:
        out.append({"op": "create_object_attribute", "name": API_OBJECT, "parents": [ADMIN_BASE]})
    if graph.find(READERS) is None:
        out += [
            {"op": "create_user_attribute", "name": READERS, "parents": [ADMIN_PC]},
            # administrators administer the tokens' users (to delete a revoked one)
            {"op": "associate", "userAttribute": ADMINS, "target": READERS, "rights": ["*a"]},
            {"op": "associate", "userAttribute": ADMINS, "target": ADMINS, "rights": ["*a"]},
        ]
    readers_hold = _granted(graph, READERS, API_OBJECT)
    if not {READ_RIGHT, API_READ} <= readers_hold:
        rights = sorted(readers_hold | {READ_RIGHT, API_READ})
        out.append(
            {"op": "associate", "userAttribute": READERS, "target": API_OBJECT, "rights": rights}
        )
    for kind in PUBLIC_KINDS:
        if graph.find(kind_attribute(kind)) is None:
            out.append(
                {
                    "op": "create_object_attribute",
                    "name": kind_attribute(kind),
                    "parents": [API_OBJECT],
                }
            )
    if graph.find(NAMESPACES) is None:
        out += [
            {"op": "create_user_attribute", "name": NAMESPACES, "parents": [ADMIN_PC]},
            {"op": "associate", "userAttribute": ADMINS, "target": NAMESPACES, "rights": ["*a"]},
        ]
    out += _decision_point_commands(graph)
    api, prefix = graph.find(API_OBJECT), namespace_attribute("")
    for node in list(graph.children(api)) if api is not None else []:
        name = graph.name(node)
        if name.startswith(prefix) and graph.find(name) is not None:
            out += _objects(graph, name.removeprefix(prefix))
    return out


def _decision_point_commands(graph: Graph) -> list[dict[str, object]]:
    """What the graph lacks of the decision points' objects, user attribute and grants."""
    out: list[dict[str, object]] = []
    for name in (GRAPH_OBJECT, DECISIONS_OBJECT):
        if graph.find(name) is None:
            out.append({"op": "create_object_attribute", "name": name, "parents": [API_OBJECT]})
    if graph.find(DECISION_POINTS) is None:
        out += [
            {"op": "create_user_attribute", "name": DECISION_POINTS, "parents": [ADMIN_PC]},
            {
                "op": "associate",
                "userAttribute": ADMINS,
                "target": DECISION_POINTS,
                "rights": ["*a"],
            },
        ]
    for target, right in ((GRAPH_OBJECT, READ_RIGHT), (DECISIONS_OBJECT, "POST")):
        held = _granted(graph, DECISION_POINTS, target)
        if right not in held:
            rights = sorted(held | {right})
            out.append(
                {
                    "op": "associate",
                    "userAttribute": DECISION_POINTS,
                    "target": target,
                    "rights": rights,
                }
            )
    return out


def _objects(graph: Graph, namespace: str) -> list[dict[str, object]]:
    return [
        {
            "op": "create_object",
            "name": resource_object(namespace, kind),
            "parents": [namespace_attribute(namespace), kind_attribute(kind)],
        }
        for kind in _namespaced_kinds()
        if graph.find(resource_object(namespace, kind)) is None
    ]


def namespace_commands(graph: Graph, namespace: str) -> list[dict[str, object]]:
    """What the graph lacks for ``namespace``: its attribute under ``gossamer:api``, its
    kinds' objects, and the user attributes holding each API right on it."""
    out: list[dict[str, object]] = []
    attribute = namespace_attribute(namespace)
    if graph.find(attribute) is None:
        out.append({"op": "create_object_attribute", "name": attribute, "parents": [API_OBJECT]})
    out += _objects(graph, namespace)
    for right in API_RIGHTS:
        users = namespace_users(namespace, right)
        if graph.find(users) is None:
            out += [
                {"op": "create_user_attribute", "name": users, "parents": [NAMESPACES]},
                {"op": "associate", "userAttribute": users, "target": attribute, "rights": [right]},
            ]
    return out


class ApiAccess:
    """Decisions on the API's objects by ``engine``."""

    def __init__(self, engine: AuthzEngine) -> None:
        self.engine = engine
        self._lock = asyncio.Lock()

    def _holds(self, user: str, target: str) -> set[str]:
        try:
            return set(self.engine.privileges(user, target))
        except GossamerError:  # its user was deleted through the NGAC API: it holds nothing
            return set()

    def _why(self, user: str, target: str, right: str) -> str:
        try:
            explained = self.engine.explain(user, target)
        except GossamerError:
            return f"NGAC user {user!r} does not exist (deleted through the NGAC API?)"
        removed = sorted(n for n, denied in explained.prohibitions.items() if right in denied)
        if removed:
            return f"prohibited by {', '.join(removed)}"
        missing = [pc.policyClass for pc in explained.policyClasses if right not in pc.rights]
        if missing:
            return f"no association grants {right!r} in policy class {', '.join(missing)}"
        return f"{target} is in no policy class: nothing is granted on it"

    async def _target(self, namespace: str, kind: str) -> str | tuple[str, str]:
        """The node to decide on; a pair of attributes (the right needed on both) when the
        object is missing and cannot be made."""
        graph = self.engine.graph
        if graph.find(API_OBJECT) is None:  # stored policies do not load: let admins repair
            return ADMIN_BASE
        target = resource_object(namespace, kind)
        if graph.find(target) is not None:
            return target
        by_kind, by_ns = kind_attribute(kind), namespace_attribute(namespace)
        have_kind, have_ns = graph.find(by_kind) is not None, graph.find(by_ns) is not None
        if kind in MESH_WIDE_KINDS or not (have_kind or have_ns):
            return API_OBJECT
        if not have_ns:  # nothing is granted on a namespace without attribute: the kind decides
            return by_kind
        if not have_kind:
            return by_ns
        async with self._lock:  # an administrator made the namespace: make its objects
            if self.engine.graph.find(target) is None:
                try:
                    commands = parse_commands(_objects(self.engine.graph, namespace))
                    await self.engine.execute(ADMIN_USER, commands)
                except GossamerError as e:
                    log.warning("could not create %s (deciding on both attributes): %s", target, e)
                    return by_ns, by_kind
        return target

    async def decide(self, user: str, right: str, namespace: str, kind: str) -> ApiDecision:
        """Whether ``user`` holds ``right`` on ``namespace``'s resources of ``kind``."""
        target = await self._target(namespace, kind)
        if isinstance(target, tuple):
            held = self._holds(user, target[0]) & self._holds(user, target[1])
            name = " and ".join(target)
        else:
            held, name = self._holds(user, target), target
        allowed = right in held
        holds = tuple(r for r in API_RIGHTS if r in held)
        why = (
            ""
            if allowed
            else self._why(user, target[0] if isinstance(target, tuple) else name, right)
        )
        return ApiDecision(allowed, right, namespace, kind, name, holds, why)

    def namespaces(self, names: Iterable[str]) -> list[dict[str, object]]:
        """The commands making ``names``' nodes (none for those that exist)."""
        out: list[dict[str, object]] = []
        for name in dict.fromkeys(names):
            out += namespace_commands(self.engine.graph, name)
        return out
