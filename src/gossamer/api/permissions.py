"""Requests on resources decided by the NGAC graph, per namespace and kind.

Every resource route decides on (the token's NGAC user, right, namespace, kind)
(``registry.api_access`` has the graph): ``get``, ``list`` and ``validate`` need ``read``,
``apply`` needs ``apply`` on every resource it carries, ``delete`` needs ``delete`` on every
one it names. A request holding the right on only some of them changes nothing: the ``403``
names each refused resource, the right, namespace and kind, the NGAC object and NGAC's
reason, and how to get the right. A listing across namespaces (no ``namespace``) answers
only what the token may read; a listing of one namespace, or one resource, it may not read
is a ``403``. docs/ngac.md, "The API under NGAC".
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Request

from gossamer.api.auth import Authenticator
from gossamer.errors import PermissionDeniedError
from gossamer.model.catalog import PUBLIC_KINDS
from gossamer.registry.api_access import (
    MESH_WIDE_KINDS,
    ApiDecision,
    namespace_users,
    resource_object,
)
from gossamer.registry.operators import Operator
from gossamer.types import DEFAULT_NAMESPACE, Manifest, ResourceKey

#: refusals named one by one in a 403 (the rest are counted)
MAX_NAMED = 20


def _operator(request: Request) -> Operator | None:
    who = getattr(request.state, "operator", None)
    return who if isinstance(who, Operator) else None


def _how(d: ApiDecision, who: Operator) -> str:
    if d.kind in MESH_WIDE_KINDS:
        return (
            f"{d.kind} is mesh-wide: no namespace grant reaches it; an administrator's token "
            f"may, or a grant of {d.right!r} on {d.target}"
        )
    return (
        f"to get it, an operator creates a token with `gossamer token create --operator "
        f"--namespace {d.namespace} --rights {d.right}`, or assigns {who.user} to "
        f"{namespace_users(d.namespace, d.right)} through the NGAC API"
    )


def _refusal(what: str, d: ApiDecision) -> str:
    held = ", ".join(d.holds) if d.holds else "nothing"
    where = resource_object(d.namespace, d.kind)
    if where != d.target:  # the namespace has no attribute: nothing is granted in it
        where = f"{where}, decided on {d.target}"
    return (
        f"{what} needs {d.right!r} on kind {d.kind} in namespace {d.namespace!r} (NGAC object "
        f"{where}, where it holds {held}: {d.why})"
    )


class Decisions:
    """The decisions of one request, each (right, namespace, kind) made once."""

    def __init__(self, request: Request, auth: Authenticator | None) -> None:
        self.auth = auth
        self.who = _operator(request)
        self._made: dict[tuple[str, str, str], ApiDecision | None] = {}

    async def decide(self, right: str, namespace: str, kind: str) -> ApiDecision | None:
        """The decision, or None when nobody authenticated the request (an app built
        without an ``Authenticator``: everything is allowed)."""
        if self.auth is None or self.who is None:
            return None
        key = (right, namespace, kind)
        if key not in self._made:
            self._made[key] = await self.auth.operators.decide(self.who, right, namespace, kind)
        return self._made[key]

    async def allows(self, right: str, namespace: str, kind: str) -> bool:
        d = await self.decide(right, namespace, kind)
        return d is None or d.allowed

    async def require(self, right: str, keys: Iterable[ResourceKey], doing: str) -> None:
        """Raise ``PermissionDeniedError`` naming every key the token may not ``right``."""
        refused: list[str] = []
        first: ApiDecision | None = None
        for key in keys:
            d = await self.decide(right, key.namespace, key.kind)
            if d is not None and not d.allowed:
                first = first or d
                refused.append(_refusal(f"{key.kind} {key.namespace}/{key.name}", d))
        if first is None or self.who is None:
            return
        kind = self.who.kind
        named = refused[:MAX_NAMED]
        more = f"; and {len(refused) - MAX_NAMED} more" if len(refused) > MAX_NAMED else ""
        unchanged = ", so nothing was changed" if right != "read" else ""
        raise PermissionDeniedError(
            f"the {kind} {self.who.name!r} (NGAC user {self.who.user!r}) may not {doing}"
            f"{unchanged}: {'; '.join(named)}{more}; {_how(first, self.who)}"
        )

    async def readable(self, manifests: Sequence[Manifest]) -> list[Manifest]:
        """The manifests the token may read."""
        out = []
        for m in manifests:
            meta: Any = m.get("metadata") or {}
            namespace = str(meta.get("namespace") or DEFAULT_NAMESPACE)
            if await self.allows("read", namespace, str(m.get("kind"))):
                out.append(m)
        return out

    async def require_namespace(self, namespace: str, kind: str | None) -> None:
        """A listing of ``namespace`` (of ``kind``, or of every kind): refused unless the
        token may read some kind there."""
        kinds = [kind] if kind is not None else list(PUBLIC_KINDS)
        for k in kinds:
            if await self.allows("read", namespace, k):
                return
        keys = [ResourceKey(kinds[0], namespace, "*")]
        what = f"list {kind or 'resources'} in namespace {namespace!r}"
        await self.require("read", keys, what)
