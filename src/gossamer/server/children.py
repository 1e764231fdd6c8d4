"""Request-path services the control plane runs as supervised child processes.

The global rate-limit service (``server.rate_limit``) and the NGAC decision point
(``server.authz_child``) answer Envoy's checks in processes of their own, never in the
control plane's event loop. ``ChildService`` runs one of them while its ``Need`` says so:
started when it becomes needed, restarted with back-off when it exits (the back-off starts
over after a steady run), stopped (SIGTERM, then SIGKILL) when no longer needed and at
shutdown. A child reads what it decides with through the API, like any service would, with
an operator token of its own: kept in the data directory (0600, made at its first start and
reused while it authenticates), passed in its environment, never on its command line.

Where proxies reach a child is fixed at start (``child_address``): the translator tells
proxies before the child runs, so a proxy never needs a new cluster when it starts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from gossamer import ports
from gossamer.ca.trust import token_secret
from gossamer.envoy.process import ManagedProcess
from gossamer.errors import AuthError, ConfigError, GossamerError
from gossamer.polling import Backoff
from gossamer.registry.operators import OperatorTokens
from gossamer.server.listen import is_loopback

log = logging.getLogger(__name__)

#: a child that ran this long before exiting starts the back-off over
STEADY_S = 30.0
#: the environment variable a child reads its operator token from (never its argv)
TOKEN_ENV = "GOSSAMER_TOKEN"
#: seconds a stopping child gets between SIGTERM and SIGKILL
STOP_GRACE_S = 5.0


class Need(Protocol):
    """When a child must run."""

    def needed(self) -> bool:
        """Whether it must run now."""
        ...

    async def changed(self) -> None:
        """Return once ``needed()`` may have changed (returning early is harmless)."""
        ...


def parse_address(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{option}: {text!r} is not auto, off or HOST:PORT")
    return host.strip("[]"), int(port)


def child_address(
    mode: str,
    listen: tuple[str, int] | None,
    *,
    insecure_listen: bool,
    option: str,
    listen_option: str,
    plaintext_risk: str,
    reserve: bool = True,
    kept: Path | None = None,
) -> tuple[str, int] | None:
    """Where proxies reach the service: None for ``off``; ``mode`` itself for HOST:PORT (it
    runs elsewhere); for ``auto`` ``listen`` (default 127.0.0.1), a free port reserved now
    for port 0 (left 0 unless ``reserve``: ``server.settings_check`` only checks). A bad
    value is a ``ConfigError`` naming ``option`` or ``listen_option``; ``plaintext_risk``
    says what a non-loopback plaintext listener exposes."""
    if mode == "off":
        return None
    if mode != "auto":
        return parse_address(mode, option)
    host, port = listen or ("127.0.0.1", 0)
    if host in ("0.0.0.0", "::", ""):
        raise ConfigError(
            f"{listen_option} {host}: proxies need an address they can reach; give the "
            "host's own address"
        )
    if not is_loopback(host) and not insecure_listen:
        raise ConfigError(
            f"{listen_option} {host}:{port}: {plaintext_risk}; listen on loopback, or "
            "pass --insecure-listen on a trusted network"
        )
    if port or not reserve:
        return host, port
    return host, kept_port(kept, host) if kept is not None else ports.free_port(host)


def kept_port(path: Path, host: str) -> int:
    """A free port on ``host``: the one kept in ``path`` (``HOST:PORT``) if nothing listens
    there, else a new one, kept there (0600). Proxies hold a cluster to the child's address:
    with the same port after a control-plane restart, their configuration is unchanged (no
    cluster is rebuilt because the plane restarted)."""
    try:
        kept_host, _, port = path.read_text(encoding="utf-8").strip().rpartition(":")
    except (OSError, UnicodeDecodeError):
        kept_host, port = "", ""
    if kept_host.strip("[]") == host and port.isdigit() and ports.is_free(host, int(port)):
        return int(port)
    fresh = ports.free_port(host)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(host_port((host, fresh)) + "\n")
    return fresh


def host_port(address: tuple[str, int]) -> str:
    """``HOST:PORT`` for a command line (an IPv6 host in brackets)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def kept_token(
    path: Path, valid: Callable[[str], bool], create: Callable[[], Awaitable[str]]
) -> str:
    """The token kept in ``path`` while ``valid`` says it still authenticates, else a new
    one from ``create`` (kept there, 0600)."""
    try:
        kept = (await asyncio.to_thread(path.read_text, encoding="utf-8")).strip()
    except (OSError, UnicodeDecodeError):
        kept = ""
    if kept and valid(kept):
        return kept
    token = await create()

    def write() -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        os.chmod(path, 0o600)  # a file kept from before, with other modes

    await asyncio.to_thread(write)
    return token


def valid_token(operators: OperatorTokens) -> Callable[[str], bool]:
    """Whether a kept child token still authenticates (``kept_token``'s ``valid``)."""

    def valid(token: str) -> bool:
        try:
            operators.authenticate(token_secret(token))
        except AuthError:
            return False
        return True

    return valid


def gossamer_program() -> list[str]:
    """How to run this installation's ``gossamer`` command."""
    script = Path(sys.executable).parent / "gossamer"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from gossamer.cli.main import run; run()"]


class ChildService:
    """``argv()`` as a child process while ``need`` says so; restarted with back-off."""

    def __init__(
        self,
        name: str,
        argv: Callable[[], list[str]],
        need: Need,
        token: Callable[[], Awaitable[str]],
        log_path: Path,
        backoff: Backoff,
        *,
        steady_s: float = STEADY_S,
    ) -> None:
        self.name = name
        self.argv = argv
        self.need = need
        #: made on the first start, so a mesh that never needs the child gets no token
        self._token_of = token
        self._token: str | None = None
        self.log_path = log_path
        self.backoff = backoff
        self.steady_s = steady_s
        self.process: ManagedProcess | None = None
        #: how many times the child was started (a test sees restarts)
        self.starts = 0

    async def run(self) -> None:
        """Until cancelled (then the child is stopped)."""
        retries = self.backoff.retries()
        loop = asyncio.get_running_loop()
        try:
            while True:
                await self._until(True)
                if self._token is None:
                    self._token = await self._token_of()
                env = {**os.environ, TOKEN_ENV: self._token}
                self.process = ManagedProcess(
                    self.argv(), log_path=self.log_path, name=self.name, env=env
                )
                started = loop.time()
                try:
                    await self.process.start()
                except GossamerError as e:
                    log.error("%s", e)
                else:
                    self.starts += 1
                    log.info("%s started (pid %d)", self.name, self.process.pid)
                    if await self._exited_or_unneeded(self.process):
                        await self.process.stop(grace=STOP_GRACE_S)
                        log.info("%s stopped: nothing needs it", self.name)
                        continue
                    log.warning(
                        "%s exited with %s: %s",
                        self.name,
                        self.process.returncode,
                        self.process.log_tail(5),
                    )
                if loop.time() - started > self.steady_s:
                    retries.reset()
                await asyncio.sleep(retries.next())
        finally:
            if self.process is not None:
                await asyncio.shield(self.process.stop(grace=STOP_GRACE_S))

    async def _exited_or_unneeded(self, process: ManagedProcess) -> bool:
        """True once the child is no longer needed, False once it exited."""
        exited = asyncio.create_task(process.wait())
        unneeded = asyncio.create_task(self._until(False))
        try:
            done, _ = await asyncio.wait({exited, unneeded}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            unneeded.cancel()
        return unneeded in done and exited not in done

    async def _until(self, needed: bool) -> None:
        while self.need.needed() != needed:
            await self.need.changed()
