"""The control plane's internal kinds, ``JoinToken``, ``Agent`` and ``OperatorToken`` (see
gossamer.registry): stored and revisioned like any resource, never applied by users.

``JoinToken`` and ``Agent`` carry the owner label (``gossamer.dev/agent``) of the agent they
are about. A join token names its future agent when it is created, so that joining (token
used + agent created) and revoking (agent revoked + its Workloads deleted) are each one
``ControlPlane.apply`` by that one owner.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime

from gossamer.model.base import Name, Resource, Strict

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _sha256(value: str) -> str:
    if not _SHA256.fullmatch(value):
        raise ValueError("must be a SHA-256 digest: 64 lowercase hex digits")
    return value


Sha256 = Annotated[str, AfterValidator(_sha256)]


class JoinTokenSpec(Strict):
    sha256: Sha256
    #: the id the agent that joins with this token gets
    agentId: Name
    expiresAt: AwareDatetime
    usedAt: AwareDatetime | None = None
    #: the host that used it
    usedBy: Name | None = None


class JoinToken(Resource):
    kind: Literal["JoinToken"]
    spec: JoinTokenSpec


class AgentSpec(Strict):
    host: Name
    credentialSha256: Sha256
    joinedAt: AwareDatetime
    #: written at join; later calls are kept in memory (docs/agent-protocol.md, liveness)
    lastSeen: AwareDatetime
    revoked: bool = False
    revokedAt: AwareDatetime | None = None
    #: the join token it joined with
    token: Name


class Agent(Resource):
    kind: Literal["Agent"]
    spec: AgentSpec


class OperatorTokenSpec(Strict):
    """An operator's API token (``gossamer.registry.operators``): only its hash is kept."""

    sha256: Sha256
    #: the NGAC user the token acts as (``admin`` for the first token, else ``token:<name>``)
    user: str
    readOnly: bool = False
    createdAt: AwareDatetime
    revokedAt: AwareDatetime | None = None


class OperatorToken(Resource):
    kind: Literal["OperatorToken"]
    spec: OperatorTokenSpec
