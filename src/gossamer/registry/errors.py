"""The registry's own error: a caller could not prove who it is."""

from __future__ import annotations

from gossamer.errors import GossamerError


class AuthError(GossamerError):
    """A join token or agent credential was refused (unknown, used, expired or revoked).

    The REST API answers 401 with the message as its one line.
    """
