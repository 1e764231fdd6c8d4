"""``OperatorTokens``: the credentials operators send to the REST API, as NGAC users.

A token is a random 256-bit secret; the store keeps only its SHA-256 (an ``OperatorToken``
record, ``model.internal``), compared in constant time. Each token acts as one NGAC user
of the engine (``gossamer.authz``), and what it may do is what that user holds on the API's
object ``gossamer:api`` (docs/security.md, "Credentials"):

- the first token, written to ``<data-dir>/admin.token`` on first start, is the engine's
  bootstrap administrator ``admin`` (``*`` on ``PM_ADMIN:base``, above ``gossamer:api``);
- an operator token is user ``token:<name>`` in ``gossamer:admins``: the same rights;
- a read-only token is user ``token:<name>`` in ``gossamer:readers``, which holds ``GET``
  and ``read`` on ``gossamer:api`` and nothing else;
- a namespaced token (``namespaces``) is user ``token:<name>`` in the user attributes
  ``api:ns/<namespace>:<right>`` of its namespaces and rights (``read``, ``apply``,
  ``delete``): it may do just that on those namespaces' resources, and nothing
  cluster-wide (``registry.api_access`` has the graph);
- a decision point's token (``gossamer authz serve``) is user ``decision-point:<name>`` in
  ``gossamer:decision-points``: it may read the graph (``GET`` on ``gossamer:authz-graph``)
  and report decisions (``POST`` on ``gossamer:authz-decisions``), nothing else;
- ``gossamer:admins`` holds ``*a`` on ``gossamer:readers`` and on itself, so administrators
  create and delete tokens' users.

Requests on resources are decided per namespace and kind (``read``, ``apply``, ``delete``
on ``api:<namespace>/<Kind>``, ``api.permissions``); cluster-wide ones need their HTTP
method on ``gossamer:api`` (those that change nothing need ``GET``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pydantic
from pydantic import TypeAdapter

from gossamer.authz.elements import ADMIN_BASE
from gossamer.authz.engine import AuthzEngine
from gossamer.authz.rights import API_READ
from gossamer.ca.trust import compose_token, token_fingerprint, token_secret
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import (
    AuthError,
    ConflictError,
    GossamerError,
    NotFoundError,
    ValidationError,
    field_errors,
)
from gossamer.files import private_file
from gossamer.model.access_commands import parse_commands
from gossamer.model.base import Name
from gossamer.model.internal import OperatorToken
from gossamer.registry.api_access import (
    ADMIN_USER,
    ADMINS,
    API_OBJECT,
    DECISION_POINTS,
    READ_RIGHT,
    READERS,
    ApiAccess,
    ApiDecision,
    bootstrap_commands,
    namespace_users,
)
from gossamer.registry.credentials import digest, matches, new_secret
from gossamer.registry.record_manifests import REGISTRY_NAMESPACE
from gossamer.registry.token_scope import decision_point_alone, token_scope
from gossamer.types import API_VERSION, ResourceKey

log = logging.getLogger(__name__)

__all__ = ["ADMINS", "ADMIN_USER", "API_OBJECT", "READERS", "READ_RIGHT", "Operator"]

#: the first token's file name in the data directory
ADMIN_TOKEN_FILE = "admin.token"

_NAME: TypeAdapter[str] = TypeAdapter(Name)
#: a decision point's token acts as NGAC user ``decision-point:<name>``
DECISION_POINT_PREFIX = "decision-point:"


def is_decision_point(user: str) -> bool:
    return user.startswith(DECISION_POINT_PREFIX)


@dataclass(frozen=True, slots=True)
class Operator:
    """Who a request's credential says is calling."""

    #: the token's name
    name: str
    #: its NGAC user
    user: str
    read_only: bool
    #: a decision point's token (may read the graph and report decisions only)
    decision_point: bool = False

    @property
    def kind(self) -> str:
        """How messages name the token."""
        if self.decision_point:
            return "decision-point token"
        return "read-only token" if self.read_only else "token"


@dataclass(frozen=True, slots=True)
class OperatorTokenInfo:
    name: str
    user: str
    read_only: bool
    created_at: datetime
    revoked_at: datetime | None
    #: a namespaced token's namespaces and rights (empty: an operator or reader everywhere)
    namespaces: tuple[str, ...] = ()
    rights: tuple[str, ...] = ()
    decision_point: bool = False


def _utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _write_secret(path: Path, secret: str) -> None:
    """``secret`` into ``path``, 0600 from its first byte (written aside, then renamed)."""
    aside = path.with_name(f".{path.name}.new")
    aside.unlink(missing_ok=True)
    private_file(aside)
    aside.write_text(secret + "\n", encoding="utf-8")
    os.replace(aside, path)


class OperatorTokens:
    """Operator tokens over ``plane`` (their records) and ``engine`` (their NGAC users)."""

    def __init__(
        self, plane: ControlPlane, engine: AuthzEngine, clock: Callable[[], datetime] = _utc_now
    ) -> None:
        self.plane = plane
        self.engine = engine
        self.access = ApiAccess(engine)
        self.clock = clock
        self._lock = asyncio.Lock()
        #: the CA fingerprint new tokens carry (``gossamer.ca.trust``; None: bare tokens)
        self.pin: Callable[[], str | None] = lambda: None

    # -- reading ---------------------------------------------------------------------------

    def _records(self) -> list[OperatorToken]:
        model = self.plane.model
        if model is None:
            return []
        return sorted(
            (r for k, r in model.resources.items() if isinstance(r, OperatorToken)),
            key=lambda r: r.metadata.name,
        )

    def _record(self, name: str) -> OperatorToken | None:
        model = self.plane.model
        key = ResourceKey("OperatorToken", REGISTRY_NAMESPACE, name)
        found = model.resources.get(key) if model is not None else None
        return found if isinstance(found, OperatorToken) else None

    def tokens(self) -> list[OperatorTokenInfo]:
        """Every token (revoked ones too), never a secret."""
        return [self._info(r) for r in self._records()]

    def authenticate(self, secret: str) -> Operator:
        """The operator ``secret`` is the token of; ``AuthError`` for an unknown or revoked
        one. Every stored hash is compared, in constant time each."""
        found = None
        for r in self._records():
            if matches(secret, r.spec.sha256):
                found = r
        if found is None:
            raise AuthError(
                "the token is not known to this control plane: check it was copied whole "
                "(GOSSAMER_TOKEN, --token, ~/.config/gossamer/token), or ask an operator for "
                "one (`gossamer token create --operator`)",
                "wrong_credential",
            )
        if found.spec.revokedAt is not None:
            raise AuthError(
                f"the token {found.metadata.name!r} was revoked at "
                f"{found.spec.revokedAt.isoformat()}; ask an operator for a new one "
                "(`gossamer token create --operator`)",
                "revoked",
            )
        user = found.spec.user
        return Operator(found.metadata.name, user, found.spec.readOnly, is_decision_point(user))

    def allows(self, operator: Operator, right: str, target: str = API_OBJECT) -> bool:
        """Whether ``operator``'s NGAC user holds ``right`` on ``target`` (the API's object,
        or one below it). While the engine's graph lacks that object it is decided on the
        API's object, and without that (its stored policies do not load) on
        ``PM_ADMIN:base``, so administrators can still repair them."""
        graph = self.engine.graph
        if graph.find(target) is None:
            target = API_OBJECT if graph.find(API_OBJECT) is not None else ADMIN_BASE
        try:
            return right in self.engine.privileges(operator.user, target)
        except GossamerError:  # its user was deleted through the NGAC API: it holds nothing
            return False

    async def decide(
        self, operator: Operator, right: str, namespace: str, kind: str
    ) -> ApiDecision:
        """Whether ``operator`` holds ``right`` (read, apply, delete) on ``namespace``'s
        resources of ``kind`` (``registry.api_access``)."""
        return await self.access.decide(operator.user, right, namespace, kind)

    # -- first start -----------------------------------------------------------------------

    async def bootstrap(self, data_dir: Path) -> Path | None:
        """On first start (no token stored yet): the API's NGAC object and readers, and
        the first token, written to ``<data_dir>/admin.token`` (0600). Returns that path
        when it was written, None when tokens existed already."""
        async with self._lock:
            await self._ensure_graph()
            path = data_dir / ADMIN_TOKEN_FILE
            if self._records():
                await asyncio.to_thread(self._repin, path)
                return None
            secret = new_secret()
            await asyncio.to_thread(_write_secret, path, compose_token(self.pin(), secret))
            await self._store(ADMIN_USER, ADMIN_USER, secret, read_only=False)
            return path

    def repin_admin_token(self, data_dir: Path) -> None:
        """``admin.token`` names the root the API's certificate chains to now (called when
        that certificate is renewed: after a root rotation's move the file works at once,
        no restart needed). Blocking (file I/O)."""
        self._repin(data_dir / ADMIN_TOKEN_FILE)

    def _repin(self, path: Path) -> None:
        """Rewrite ``admin.token`` with the current CA fingerprint if it holds a live
        token pinned to another (a rotated root) or to none (written before pins)."""
        try:
            text = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return
        pin = self.pin()
        if not text or pin is None or token_fingerprint(text) == pin:
            return
        hashed = digest(text)
        if any(r.spec.sha256 == hashed and r.spec.revokedAt is None for r in self._records()):
            _write_secret(path, compose_token(pin, token_secret(text)))

    async def _ensure_graph(self) -> None:
        commands = bootstrap_commands(self.engine.graph)
        if commands:
            await self.engine.execute(ADMIN_USER, parse_commands(commands))

    async def _store(
        self,
        name: str,
        user: str,
        secret: str,
        *,
        read_only: bool,
        namespaces: tuple[str, ...] = (),
        rights: tuple[str, ...] = (),
    ) -> OperatorTokenInfo:
        now = self.clock()
        scoped = {"namespaces": list(namespaces), "rights": list(rights)} if namespaces else {}
        record = OperatorToken.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": "OperatorToken",
                "metadata": {"name": name, "namespace": REGISTRY_NAMESPACE},
                "spec": {
                    "sha256": digest(secret),
                    "user": user,
                    "readOnly": read_only,
                    "createdAt": now.isoformat(),
                    **scoped,
                },
            }
        )
        await self.plane.apply([record], internal=True)
        return OperatorTokenInfo(
            name, user, read_only, now, None, namespaces, rights, is_decision_point(user)
        )

    # -- operators' changes ----------------------------------------------------------------

    async def create(
        self,
        by: Operator,
        name: str | None = None,
        *,
        read_only: bool = False,
        namespaces: Sequence[str] = (),
        rights: Sequence[str] | None = None,
        decision_point: bool = False,
    ) -> tuple[str, OperatorTokenInfo]:
        """A new token (its secret, shown only now) acting as NGAC user ``token:<name>``,
        created by ``by``'s NGAC user (the engine checks it may). With ``namespaces`` it
        holds ``rights`` (default read, apply, delete; read only if ``read_only``) on
        those namespaces' resources and nothing else. A ``decision_point`` token acts as
        ``decision-point:<name>``: it may read the graph and report decisions only."""
        name = name or f"t-{secrets.token_hex(4)}"
        try:
            _NAME.validate_python(name)
        except pydantic.ValidationError as e:
            raise ValidationError(field_errors(e, root=("name",))) from None
        if decision_point:
            decision_point_alone(read_only, namespaces, rights)
            read_only = True  # it changes nothing of the mesh
        spaces, granted = token_scope(namespaces, rights, read_only)
        if spaces:
            read_only = set(granted) <= {API_READ}
        async with self._lock:
            if self._record(name) is not None:
                raise ConflictError(
                    f"a token named {name!r} exists (names are never reused, even revoked "
                    "ones): choose another --name"
                )
            user = f"{DECISION_POINT_PREFIX if decision_point else 'token:'}{name}"
            if self.engine.graph.find(user) is None:
                commands = self.access.namespaces(spaces)
                if decision_point:
                    parents = [DECISION_POINTS]
                elif spaces:
                    parents = [namespace_users(ns, r) for ns in spaces for r in granted]
                else:
                    parents = [READERS if read_only else ADMINS]
                commands.append({"op": "create_user", "name": user, "parents": parents})
                await self.engine.execute(by.user, parse_commands(commands))
            secret = new_secret()
            info = await self._store(
                name, user, secret, read_only=read_only, namespaces=spaces, rights=granted
            )
            return compose_token(self.pin(), secret), info

    async def revoke(self, by: Operator, name: str) -> OperatorTokenInfo:
        """Revoke token ``name``: it answers 401 from now on, and its NGAC user is deleted
        (``admin``, the bootstrap administrator, stays). The last token that can write is
        not revoked: that would lock every operator out."""
        async with self._lock:
            found = self._record(name)
            if found is None:
                raise NotFoundError(
                    f"no operator token {name!r}: list them with `gossamer token list --operator`"
                )
            if found.spec.revokedAt is not None:
                return self._info(found)
            writers = [
                r
                for r in self._records()
                if _writes(r) and r.spec.revokedAt is None and r is not found
            ]
            if _writes(found) and not writers:
                raise ConflictError(
                    f"{name!r} is the last operator token that can change the mesh: revoking it "
                    "would lock every operator out; create another first "
                    "(`gossamer token create --operator`)"
                )
            user = found.spec.user
            if user != ADMIN_USER and self.engine.graph.find(user) is not None:
                command = {"op": "delete_node", "name": user}
                await self.engine.execute(by.user, parse_commands([command]))
            spec = found.spec.model_copy(update={"revokedAt": self.clock()})
            revoked = found.model_copy(update={"spec": spec})
            record = OperatorToken.model_validate(revoked.to_manifest())
            await self.plane.apply([record], internal=True)
            return self._info(revoked)

    @staticmethod
    def _info(r: OperatorToken) -> OperatorTokenInfo:
        s = r.spec
        return OperatorTokenInfo(
            r.metadata.name,
            s.user,
            s.readOnly,
            s.createdAt,
            s.revokedAt,
            tuple(s.namespaces),
            tuple(s.rights),
            is_decision_point(s.user),
        )


def _writes(r: OperatorToken) -> bool:
    """Whether ``r`` may change the whole mesh (not read-only, not namespaced, not a
    decision point's)."""
    return not r.spec.readOnly and not r.spec.namespaces and not is_decision_point(r.spec.user)
