"""``JoinTokens``: single-use join tokens, from creation until a host redeems one.

A token is the only way a host becomes an agent, so its life (its ttl bounds, its scope,
pruning the expired ones nobody used, and every reason a presented token is refused) is kept
apart from what agents do once they have joined (``gossamer.registry.registry``). Tokens are
``JoinToken`` records written through ``ControlPlane.apply`` (``internal=True``, ``owner=``
the agent id the token will give), durable and revisioned like any resource; only their
SHA-256 is stored.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from gossamer.ca.trust import compose_token
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import AuthError, FieldError, ValidationError
from gossamer.model.internal import HostScope
from gossamer.model.snapshot import ModelSnapshot
from gossamer.registry.credentials import digest, matches, new_secret
from gossamer.registry.record_manifests import REGISTRY_NAMESPACE, JoinToken, record_manifest
from gossamer.registry.records import NewToken, TokenInfo, TokenState
from gossamer.types import ResourceKey

#: how long a token lives unless told, and the longest it may
DEFAULT_TOKEN_TTL = timedelta(hours=1)
MAX_TOKEN_TTL = timedelta(days=30)
#: expired, unused tokens are deleted this long after they expired (at most this many at once)
TOKEN_RETENTION = timedelta(days=1)
PRUNE_BATCH = 20


def _token_name(hashed: str) -> str:
    return f"jt-{hashed[:20]}"


def _state(t: JoinToken, now: datetime) -> TokenState:
    if t.spec.usedAt is not None:
        return "used"
    return "expired" if now >= t.spec.expiresAt else "unused"


class JoinTokens:
    """The join tokens of one ``ControlPlane``.

    ``model`` is the loaded model (it raises while the plane loads), ``now`` the current time
    (whole seconds, UTC) and ``pin`` the CA fingerprint new tokens carry (None: bare tokens).
    ``lock`` serialises every token write and every join: a token is redeemed once.
    """

    def __init__(
        self,
        plane: ControlPlane,
        *,
        model: Callable[[], ModelSnapshot],
        now: Callable[[], datetime],
        pin: Callable[[], str | None],
    ) -> None:
        self.plane = plane
        self._model = model
        self._now = now
        self._pin = pin
        self.lock = asyncio.Lock()

    def _tokens(self) -> list[JoinToken]:
        return [
            r
            for k, r in sorted(self._model().resources.items())
            if k.kind == "JoinToken" and isinstance(r, JoinToken)
        ]

    async def create(self, ttl: timedelta = DEFAULT_TOKEN_TTL, *, scope: HostScope) -> NewToken:
        """A new single-use join token, valid for ``ttl``, for a host that may serve only
        what ``scope`` allows (docs/agent.md)."""
        if not timedelta(seconds=1) <= ttl <= MAX_TOKEN_TTL:
            raise ValidationError(
                [
                    FieldError(
                        f"{ttl.total_seconds():g} s is out of range: a token lives from "
                        f"1 s to {MAX_TOKEN_TTL.days} days",
                        "ttlSeconds",
                    )
                ]
            )
        await self._prune()
        async with self.lock:
            token = new_secret()
            hashed = digest(token)
            agent_id = f"agent-{secrets.token_hex(5)}"
            expires = self._now() + ttl
            spec: dict[str, object] = {
                "sha256": hashed,
                "agentId": agent_id,
                "expiresAt": expires.isoformat(),
                "scope": scope.model_dump(exclude_defaults=True),
            }
            record = JoinToken.model_validate(
                record_manifest("JoinToken", _token_name(hashed), agent_id, spec)
            )
            await self.plane.apply([record], owner=agent_id, internal=True)
        return NewToken(compose_token(self._pin(), token), expires)

    def infos(self) -> list[TokenInfo]:
        """Every token, used and expired ones too, by name."""
        now = self._now()
        return [
            TokenInfo(
                t.metadata.name,
                t.spec.agentId,
                t.spec.expiresAt,
                t.spec.usedAt,
                t.spec.usedBy,
                _state(t, now),
                t.spec.scope,
            )
            for t in self._tokens()
        ]

    def unused(self) -> int:
        """How many tokens could still be joined with."""
        now = self._now()
        return sum(1 for t in self._tokens() if _state(t, now) == "unused")

    async def _prune(self) -> None:
        """Delete a few tokens nobody used that expired more than TOKEN_RETENTION ago."""
        cutoff = self._now() - TOKEN_RETENTION
        stale = [t for t in self._tokens() if t.spec.usedAt is None and t.spec.expiresAt < cutoff]
        for t in stale[:PRUNE_BATCH]:
            async with self.lock:
                await self.plane.apply((), deletes=[t.key], owner=t.spec.agentId, internal=True)

    def redeemable(self, token: str, now: datetime) -> JoinToken:
        """The record of ``token`` if a host may join with it at ``now``; ``AuthError`` for
        an unknown, used, expired or scope-less token. Hold ``lock``."""
        found = self._model().resources.get(
            ResourceKey("JoinToken", REGISTRY_NAMESPACE, _token_name(digest(token)))
        )
        if not isinstance(found, JoinToken) or not matches(token, found.spec.sha256):
            raise AuthError(
                "the join token is not known to this control plane: check it was copied "
                "whole, or create one with `gossamer token create`",
                "token_unknown",
            )
        if found.spec.usedAt is not None:
            raise AuthError(
                f"the join token was already used (by host {found.spec.usedBy} at "
                f"{found.spec.usedAt.isoformat()}); tokens are single use: create a new "
                "one with `gossamer token create`",
                "token_used",
            )
        if now >= found.spec.expiresAt:
            raise AuthError(
                f"the join token expired at {found.spec.expiresAt.isoformat()}; create a "
                "new one with `gossamer token create [--ttl 1h]`",
                "token_expired",
            )
        if found.spec.scope is None:
            raise AuthError(
                "the join token was created before join tokens said what a host may "
                "serve; create a new one with `gossamer token create --service NAME` "
                "(or --any-service)",
                "token_unknown",
            )
        return found

    @staticmethod
    def used_up(found: JoinToken, host: str, now: datetime) -> JoinToken:
        """``found`` marked used by ``host`` at ``now``: written with the new agent."""
        used = found.model_copy(
            update={"spec": found.spec.model_copy(update={"usedAt": now, "usedBy": host})}
        )
        return JoinToken.model_validate(used.to_manifest())
