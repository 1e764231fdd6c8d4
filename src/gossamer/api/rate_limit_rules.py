"""``GET /v1/ratelimit/rules``: what the rate-limit service decides with.

The globally limited rules of every Route and the Mesh's failure mode, as a rules document
(``gossamer.ratelimit.rules``) with a version: the store revision at which they last
changed. A long poll: with ``after`` equal to the current version the answer waits until
they change or ``wait`` seconds pass (then it repeats the current ones). Any operator
token with the read right may ask (a read-only one is enough); the control plane's own
``ratelimit serve`` child holds a read-only token of its own (``server.rate_limit``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query

from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.changes import Changes
from gossamer.controlplane.plane import ControlPlane
from gossamer.model.rate_limits import global_rules
from gossamer.ratelimit.decision import RuleSet
from gossamer.ratelimit.rules import RULES_PATH, rules_document

#: the longest a poll may wait (s)
MAX_WAIT_S = 60.0


class RuleBoard:
    """The current rules, recomputed when a Route or the Mesh changes; wakes pollers."""

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane
        self.changes = Changes()  # (released when the server stops)
        self.rules = self._compute("0")
        plane.add_listener({"Route", "Mesh"}, self._on_change)

    def _compute(self, version: str) -> RuleSet:
        model = self._plane.model
        if model is None:
            return RuleSet(version)
        rules = global_rules(model.routes.values())
        return RuleSet.of(version, rules, model.mesh.spec.rateLimit.failureMode)

    def _on_change(self, changes: object, revision: int) -> None:
        fresh = self._compute(str(revision))
        if (fresh.rules, fresh.failure_mode) == (self.rules.rules, self.rules.failure_mode):
            return
        self.rules = fresh
        self.changes.changed()

    async def wait(self, after: str, wait_s: float) -> RuleSet:
        """The rules once their version is not ``after`` (or after ``wait_s``)."""
        if self.rules.version != after or wait_s <= 0:
            return self.rules
        await self.changes.next(wait_s)
        return self.rules


def install_rate_limit_rules(app: FastAPI, board: RuleBoard, auth: Authenticator | None) -> None:
    router = APIRouter(tags=["rate limits"], dependencies=[require_operator(auth)])

    @router.get(RULES_PATH, response_model=dict[str, Any])
    async def rules(
        after: Annotated[str, Query(description="the version the caller has")] = "",
        wait: Annotated[
            float, Query(ge=0, le=MAX_WAIT_S, description="seconds to wait for a change")
        ] = 0,
    ) -> dict[str, Any]:
        """The Routes' global rate limits and the Mesh's failure mode (docs/traffic.md)."""
        return rules_document(await board.wait(after, wait))

    app.include_router(router)


__all__ = ["RuleBoard", "install_rate_limit_rules"]
