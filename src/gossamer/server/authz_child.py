"""The NGAC decision point (``gossamer authz serve``) as the control plane's supervised
child (docs/ngac.md, "End users").

``--authz-service auto`` (the default): the control plane reserves an address for it at
start (``--authz-listen``, default a free loopback port), tells the translator so sidecars
of services that decide end users get the ``gossamer_authz`` cluster, and runs ``gossamer
authz serve --server <API>`` as a child process while some service decides end users (it
enforces and the Mesh trusts some issuer: ``translate.ext_authz.decides_end_users``):
started when the first does, restarted with back-off when it exits, stopped when none does
any more and at shutdown (``server.children``). ``--authz-service HOST:PORT``: decision
points run elsewhere; ``off``: none (requests with a token to such services fail closed,
403).

The child follows the graph through the API (``GET /v1/authz/graph``) and reports its
decisions (``POST /v1/authz/decisions``) with a decision point's token of its own
(``authz.token`` in the data directory, 0600: it may do that and nothing else), passed in
its environment; it verifies the API against the mesh's roots (``--ca-file``).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from gossamer.ca.material import ROOT_CERT
from gossamer.ca.trust import token_secret
from gossamer.controlplane.plane import ControlPlane
from gossamer.model.snapshot import ModelSnapshot
from gossamer.polling import Backoff
from gossamer.registry.operators import ADMIN_USER, Operator, OperatorTokens
from gossamer.server.children import (
    ChildService,
    child_address,
    gossamer_program,
    host_port,
    kept_token,
    valid_token,
)
from gossamer.translate.ext_authz import AuthzService, decides_end_users

TOKEN_FILE = "authz.token"
LOG_FILE = "authz.log"


@dataclass(frozen=True)
class AuthzSettings:
    #: ``auto``, ``off`` or the HOST:PORT of decision points running elsewhere
    mode: str = "auto"
    #: ``auto``: where the child listens (default: 127.0.0.1 on a free port)
    listen: tuple[str, int] | None = None
    #: allow ``auto`` to listen on a non-loopback address (plaintext gRPC)
    insecure_listen: bool = False
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, maximum=30.0))


def service_address(
    settings: AuthzSettings, *, reserve: bool = True, kept: Path | None = None
) -> AuthzService | None:
    """Where sidecars reach the decision point (a free port is reserved now for ``auto``
    unless ``reserve`` is false; the one kept in ``kept`` while free);
    ``ConfigError`` naming the flag whose value is wrong."""
    address = child_address(
        settings.mode,
        settings.listen,
        insecure_listen=settings.insecure_listen,
        option="--authz-service",
        listen_option="--authz-listen",
        plaintext_risk="the decision point speaks plaintext gRPC (checks carry end users' "
        "verified token payloads)",
        reserve=reserve,
        kept=kept,
    )
    return None if address is None else AuthzService(*address)


def deciding_end_users(model: ModelSnapshot | None) -> bool:
    """Does some service decide end users (so its sidecars ask the decision point)?"""
    if model is None or not model.mesh.spec.authentication.jwt:
        return False
    return any(decides_end_users(model, s) for s in model.services.values())


async def decision_point_token(operators: OperatorTokens, data_dir: Path) -> str:
    """The child's token: the one kept in ``authz.token`` while it authenticates as a
    decision point's, else a new decision point's token (kept there, 0600). The one place
    the kind is chosen."""

    async def create() -> str:
        admin = Operator(ADMIN_USER, ADMIN_USER, False)
        name = f"authz-{os.urandom(3).hex()}"
        token, _ = await operators.create(admin, name, decision_point=True)
        return token

    authenticates = valid_token(operators)

    def valid(token: str) -> bool:  # a read-only token kept from before cannot report
        return authenticates(token) and operators.authenticate(token_secret(token)).decision_point

    return await kept_token(data_dir / TOKEN_FILE, valid, create)


class EndUserNeed:
    """The child is needed while some service decides end users; wakes on every Service
    or Mesh change the plane stores."""

    def __init__(self, plane: ControlPlane) -> None:
        self._plane = plane
        self._changed = asyncio.Event()
        plane.add_listener({"Service", "Mesh"}, self._on_change)

    def _on_change(self, changes: object, revision: int) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def needed(self) -> bool:
        return deciding_end_users(self._plane.model)

    async def changed(self) -> None:
        await self._changed.wait()


class AuthzChild(ChildService):
    """``gossamer authz serve`` while some service decides end users."""

    def __init__(
        self,
        plane: ControlPlane,
        address: AuthzService,
        server: str,
        operators: OperatorTokens,
        data_dir: Path,
        settings: AuthzSettings,
        *,
        tls: bool,
    ) -> None:
        async def token() -> str:
            return await decision_point_token(operators, data_dir)

        super().__init__(
            "authz serve",
            self._argv,
            EndUserNeed(plane),
            token,
            data_dir / LOG_FILE,
            settings.backoff,
        )
        self.address = address
        self.server = server
        #: the mesh's roots, to verify the API with (None: the API is plaintext)
        self.ca_file = data_dir / "ca" / ROOT_CERT if tls else None

    def _argv(self) -> list[str]:
        listen = host_port((self.address.host, self.address.port))
        out = [*gossamer_program(), "authz", "serve", "--listen", listen]
        out += ["--server", self.server]
        if self.ca_file is not None:
            out += ["--ca-file", str(self.ca_file)]
        return out
