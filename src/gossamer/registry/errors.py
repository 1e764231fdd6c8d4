"""The registry's own error: a caller could not prove who it is, and why."""

from __future__ import annotations

from typing import Literal

from gossamer.errors import GossamerError

#: Why a 401 was answered (the ``reason`` of its body, docs/agent-protocol.md). An agent
#: stops only for ``revoked``, the operator's kill switch; for every other reason it keeps
#: its Envoys serving their last configuration and retries (issue 7, R1).
AuthReason = Literal[
    "no_credential",
    "wrong_credential",
    "unknown_agent",
    "revoked",
    "token_unknown",
    "token_used",
    "token_expired",
]


class AuthError(GossamerError):
    """A join token or agent credential was refused (unknown, used, expired or revoked).

    The REST API answers 401 with the message as its one line and ``reason`` beside it.
    """

    def __init__(self, message: str, reason: AuthReason) -> None:
        super().__init__(message)
        self.reason: AuthReason = reason
