"""The global rate-limit service as the control plane's supervised child.

``--ratelimit auto`` (the default): the control plane reserves an address for the service
at start (``--ratelimit-listen``, default a free loopback port), tells the translator so
proxies routing a globally limited rule get a cluster to it, and runs ``gossamer
ratelimit serve`` as a child process while some Route has such a rule: started when the
first appears, restarted with back-off when it exits, stopped when the last goes and at
shutdown (SIGTERM, then SIGKILL). It never runs in the control plane's event loop.
``--ratelimit HOST:PORT``: the service runs elsewhere (one or several ``ratelimit serve``
sharing Redis); ``off``: none (such requests fail as ``Mesh.spec.rateLimit`` says).

The child reads its rules through the API like any service would, with a read-only
operator token of its own (``ratelimit.token`` in the data directory, 0600, created at its
first start and reused), passed in its environment, never on its command line.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from gossamer.api.rate_limit_rules import RuleBoard
from gossamer.polling import Backoff
from gossamer.registry.operators import ADMIN_USER, Operator, OperatorTokens
from gossamer.server.children import (
    STEADY_S,
    ChildService,
    child_address,
    gossamer_program,
    host_port,
    kept_token,
    valid_token,
)
from gossamer.translate.global_rate_limit import RateLimitService

__all__ = ["STEADY_S", "RateLimitChild", "RateLimitSettings", "child_token", "service_address"]

TOKEN_FILE = "ratelimit.token"


@dataclass(frozen=True)
class RateLimitSettings:
    #: ``auto``, ``off`` or the HOST:PORT of a service running elsewhere
    mode: str = "auto"
    #: ``auto``: where the child listens (default: 127.0.0.1 on a free port)
    listen: tuple[str, int] | None = None
    #: ``auto``: the child counts in this Redis (``redis://...``); default in its memory
    redis: str | None = None
    #: allow ``auto`` to listen on a non-loopback address (plaintext gRPC)
    insecure_listen: bool = False
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, maximum=30.0))


def service_address(
    settings: RateLimitSettings, *, reserve: bool = True, kept: Path | None = None
) -> RateLimitService | None:
    """Where proxies reach the service (a free port is reserved now for ``auto`` unless
    ``reserve`` is false; the one kept in ``kept`` while free);
    ``ConfigError`` naming the flag whose value is wrong."""
    address = child_address(
        settings.mode,
        settings.listen,
        insecure_listen=settings.insecure_listen,
        option="--ratelimit",
        listen_option="--ratelimit-listen",
        plaintext_risk="the rate-limit service speaks plaintext gRPC (descriptors carry "
        "request headers such as API keys)",
        reserve=reserve,
        kept=kept,
    )
    return None if address is None else RateLimitService(*address)


async def child_token(operators: OperatorTokens, data_dir: Path) -> str:
    """The child's read-only token: the one kept in ``ratelimit.token`` while it still
    authenticates, else a new one (kept there, 0600)."""

    async def create() -> str:
        admin = Operator(ADMIN_USER, ADMIN_USER, False)
        token, _ = await operators.create(admin, f"ratelimit-{os.urandom(3).hex()}", read_only=True)
        return token

    return await kept_token(data_dir / TOKEN_FILE, valid_token(operators), create)


class _RulesNeed:
    """The child is needed while some Route has a global limit."""

    def __init__(self, board: RuleBoard) -> None:
        self.board = board

    def needed(self) -> bool:
        return bool(self.board.rules.rules)

    async def changed(self) -> None:
        await self.board.changes.next(60.0, poller=False)  # (not ended by a stop)


class RateLimitChild(ChildService):
    """``gossamer ratelimit serve`` while ``board`` has rules; restarted with back-off."""

    def __init__(
        self,
        board: RuleBoard,
        address: RateLimitService,
        server: str,
        token: Callable[[], Awaitable[str]],
        log_path: Path,
        settings: RateLimitSettings,
    ) -> None:
        super().__init__(
            "ratelimit serve", self._argv, _RulesNeed(board), token, log_path, settings.backoff
        )
        self.board = board
        self.address = address
        self.server = server
        self.settings = settings

    def _argv(self) -> list[str]:
        listen = host_port((self.address.host, self.address.port))
        out = [*gossamer_program(), "ratelimit", "serve", "--listen", listen]
        out += ["--server", self.server]
        if self.settings.redis:
            out += ["--redis", self.settings.redis]
        return out
