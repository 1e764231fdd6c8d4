"""``OperatorTokens``: the credentials operators send to the REST API, as NGAC users.

A token is a random 256-bit secret; the store keeps only its SHA-256 (an ``OperatorToken``
record, ``model.internal``), compared in constant time. Each token acts as one NGAC user
of the engine (``gossamer.authz``), and what it may do is what that user holds on the API's
object ``gossamer:api`` (docs/security.md, "Credentials"):

- the first token, written to ``<data-dir>/admin.token`` on first start, is the engine's
  bootstrap administrator ``admin`` (``*`` on ``PM_ADMIN:base``, above ``gossamer:api``);
- an operator token is user ``token:<name>`` in ``gossamer:admins``: the same rights;
- a read-only token is user ``token:<name>`` in ``gossamer:readers``, which holds ``GET``
  on ``gossamer:api`` and nothing else;
- ``gossamer:admins`` holds ``*a`` on ``gossamer:readers`` and on itself, so administrators
  create and delete tokens' users.

The rights are the engine's default resource rights, the HTTP methods: a request needs
its method on ``gossamer:api`` (requests that change nothing, like ``POST /v1/validate``,
need ``GET``). Granting an NGAC user ``GET`` on ``gossamer:api`` makes a reader; the NGAC
administration API extends this one path (more attributes, narrower objects).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pydantic
from pydantic import TypeAdapter

from gossamer.authz.elements import ADMIN_BASE, ADMIN_PC
from gossamer.authz.engine import AuthzEngine
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
from gossamer.registry.credentials import digest, matches, new_secret
from gossamer.registry.record_manifests import REGISTRY_NAMESPACE
from gossamer.types import API_VERSION, ResourceKey

log = logging.getLogger(__name__)

#: the NGAC object standing for the control plane's REST API
API_OBJECT = "gossamer:api"
#: the user attribute of read-only tokens (``GET`` on ``API_OBJECT``)
READERS = "gossamer:readers"
#: the user attribute of the bootstrap administrator and of operator tokens
ADMINS = "gossamer:admins"
#: the NGAC user of the first token
ADMIN_USER = "admin"
#: the right a request that changes nothing needs
READ_RIGHT = "GET"
#: the first token's file name in the data directory
ADMIN_TOKEN_FILE = "admin.token"

_NAME: TypeAdapter[str] = TypeAdapter(Name)


@dataclass(frozen=True, slots=True)
class Operator:
    """Who a request's credential says is calling."""

    #: the token's name
    name: str
    #: its NGAC user
    user: str
    read_only: bool


@dataclass(frozen=True, slots=True)
class OperatorTokenInfo:
    name: str
    user: str
    read_only: bool
    created_at: datetime
    revoked_at: datetime | None


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
        self.clock = clock
        self._lock = asyncio.Lock()

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
        return Operator(found.metadata.name, found.spec.user, found.spec.readOnly)

    def allows(self, operator: Operator, right: str) -> bool:
        """Whether ``operator``'s NGAC user holds ``right`` on the API's object. While the
        engine's graph lacks that object (its stored policies do not load), it is decided
        on ``PM_ADMIN:base``, so administrators can still repair them."""
        target = API_OBJECT if self.engine.graph.find(API_OBJECT) is not None else ADMIN_BASE
        try:
            return right in self.engine.privileges(operator.user, target)
        except GossamerError:  # its user was deleted through the NGAC API: it holds nothing
            return False

    # -- first start -----------------------------------------------------------------------

    async def bootstrap(self, data_dir: Path) -> Path | None:
        """On first start (no token stored yet): the API's NGAC object and readers, and
        the first token, written to ``<data_dir>/admin.token`` (0600). Returns that path
        when it was written, None when tokens existed already."""
        async with self._lock:
            await self._ensure_graph()
            if self._records():
                return None
            secret = new_secret()
            path = data_dir / ADMIN_TOKEN_FILE
            await asyncio.to_thread(_write_secret, path, secret)
            await self._store(ADMIN_USER, ADMIN_USER, secret, read_only=False)
            return path

    async def _ensure_graph(self) -> None:
        commands: list[dict[str, object]] = []
        graph = self.engine.graph
        if graph.find(API_OBJECT) is None:
            commands.append(
                {"op": "create_object_attribute", "name": API_OBJECT, "parents": [ADMIN_BASE]}
            )
        if graph.find(READERS) is None:
            commands += [
                {"op": "create_user_attribute", "name": READERS, "parents": [ADMIN_PC]},
                {
                    "op": "associate",
                    "userAttribute": READERS,
                    "target": API_OBJECT,
                    "rights": [READ_RIGHT],
                },
                # administrators administer the tokens' users (to delete a revoked one)
                {"op": "associate", "userAttribute": ADMINS, "target": READERS, "rights": ["*a"]},
                {"op": "associate", "userAttribute": ADMINS, "target": ADMINS, "rights": ["*a"]},
            ]
        if commands:
            await self.engine.execute(ADMIN_USER, parse_commands(commands))

    async def _store(
        self, name: str, user: str, secret: str, *, read_only: bool
    ) -> OperatorTokenInfo:
        now = self.clock()
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
                },
            }
        )
        await self.plane.apply([record], internal=True)
        return OperatorTokenInfo(name, user, read_only, now, None)

    # -- operators' changes ----------------------------------------------------------------

    async def create(
        self, by: Operator, name: str | None = None, *, read_only: bool = False
    ) -> tuple[str, OperatorTokenInfo]:
        """A new token (its secret, shown only now) acting as NGAC user ``token:<name>``,
        created by ``by``'s NGAC user (the engine checks it may)."""
        name = name or f"t-{secrets.token_hex(4)}"
        try:
            _NAME.validate_python(name)
        except pydantic.ValidationError as e:
            raise ValidationError(field_errors(e, root=("name",))) from None
        async with self._lock:
            if self._record(name) is not None:
                raise ConflictError(
                    f"a token named {name!r} exists (names are never reused, even revoked "
                    "ones): choose another --name"
                )
            user = f"token:{name}"
            if self.engine.graph.find(user) is None:
                parent = READERS if read_only else ADMINS
                command = {"op": "create_user", "name": user, "parents": [parent]}
                await self.engine.execute(by.user, parse_commands([command]))
            secret = new_secret()
            return secret, await self._store(name, user, secret, read_only=read_only)

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
                if not r.spec.readOnly and r.spec.revokedAt is None and r is not found
            ]
            if not found.spec.readOnly and not writers:
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
        return OperatorTokenInfo(
            r.metadata.name, r.spec.user, r.spec.readOnly, r.spec.createdAt, r.spec.revokedAt
        )
