"""Run one gateway Envoy and keep it running.

``GatewayRunner.run(stop)`` writes the bootstrap, starts Envoy, forwards its access log,
and keeps it running with ``gossamer.envoy.supervisor`` (restarts with back-off, gives up
after ``MAX_START_FAILURES`` failed starts in a row). Once ``stop`` is set it drains it: the
admin health check fails (load balancers in front stop sending), listeners drain gracefully
(HTTP/1 responses say ``Connection: close``, HTTP/2 gets GOAWAY) until no client
connection is open or ``drain_seconds`` passed; then Envoy is stopped.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gossamer.envoy.binary import check_version, find_envoy
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.sds.secrets import SecretCache
from gossamer.envoy.sds.server import SdsServer
from gossamer.envoy.supervisor import (
    Drain,
    DrainFailed,
    EnvoySupervisor,
    Event,
    Exited,
    Running,
    StartFailed,
    State,
)
from gossamer.errors import RefusedError
from gossamer.gateway.certificates import CertificateFiles
from gossamer.gateway.host import GatewayHost
from gossamer.gateway.identity import GatewayIdentity
from gossamer.gateway.logs import LogForwarder
from gossamer.gateway.settings import GatewaySettings, gateway_bootstrap
from gossamer.ports import free_port, host_ports, require_free

#: Envoy failing to come up this many times in a row (never reaching its admin API) is fatal
MAX_START_FAILURES = 5
#: an Envoy that ran this long before dying starts the restart back-off over
STABLE_AFTER_S = 60.0
#: Envoy writes buffered access-log lines at least this often (its default: every 10 s)
ACCESS_LOG_FLUSH_MS = 1000


def _stdout(line: str) -> None:
    print(line, flush=True)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class GatewayRunnerStatistics:
    state: State
    pid: int | None
    admin: str | None
    starts: int
    restarts: int


class GatewayRunner:
    """``await GatewayRunner(settings).run(stop)``; ``on_access`` gets each access-log line
    (default: stdout), ``on_message`` the runner's own messages and Envoy's warnings
    (default: stderr). With ``host`` (a gateway holding a credential) it also keeps the
    gateway's mesh identity and serves it to Envoy over SDS (``gateway.identity``)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        host: GatewayHost | None = None,
        on_access: Callable[[str], None] = _stdout,
        on_message: Callable[[str], None] = _stderr,
    ) -> None:
        self.settings = settings
        self.host = host
        self._fatal: RefusedError | None = None
        self._on_access = on_access
        self._on_message = on_message
        self._binary = ""
        self._admin: tuple[str, int] | None = None
        # The gateway's certificates (Gateway.spec.tls), for its Envoy only.
        self._secrets = SecretCache()
        self._secrets.assign(settings.identity.node_id, settings.identity.node_id)
        self.certificates = CertificateFiles(
            self._secrets,
            settings.identity.node_id,
            say=self._say,
            poll=settings.certificate_poll,
        )
        self.sds = SdsServer(
            self._secrets, subscribed=self.certificates.poke, changed=self._sds_changed
        )
        self.identity = (
            None
            if host is None
            else GatewayIdentity(host, self._secrets, settings.identity.node_id, self._admins)
        )
        self._supervisor = EnvoySupervisor(
            self._start,
            name=f"gateway {settings.namespace}/{settings.name}",
            backoff=settings.restart,
            stable_after=STABLE_AFTER_S,
            give_up_after=MAX_START_FAILURES,
            hint=f"see {self._workdir / 'envoy.log'} (last error above)",
            on_event=self._event,
        )

    # ---- introspection -----------------------------------------------------------------

    def statistics(self) -> GatewayRunnerStatistics:
        sup = self._supervisor
        envoy = sup.current
        running = envoy is not None and envoy.running
        return GatewayRunnerStatistics(
            state=sup.state,
            pid=envoy.pid if envoy is not None and running else None,
            admin=None if self._admin is None else f"{self._admin[0]}:{self._admin[1]}",
            starts=sup.starts,
            restarts=max(0, sup.starts - 1),
        )

    def _say(self, text: str) -> None:
        s = self.settings
        self._on_message(f"gateway {s.namespace}/{s.name}: {text}")

    def _event(self, event: Event[EnvoyProcess]) -> None:
        match event:
            case StartFailed(error, _, retry_in):
                self._say(f"Envoy did not start: {str(error).splitlines()[0]}")
                if retry_in is not None:
                    self._say(f"restarting Envoy in {retry_in:.1f} s")
            case Running(envoy, _):
                admin, xds = self._admin or ("?", 0), host_ports(self.settings.xds_addrs)
                self._say(
                    f"Envoy running (pid {envoy.pid}, admin http://{admin[0]}:{admin[1]}"
                    f", xDS {xds})"
                )
            case Exited(_, status, retry_in):
                self._say(f"Envoy exited with status {status}")
                self._say(f"restarting Envoy in {retry_in:.1f} s")
            case DrainFailed(error):
                self._say(f"could not start a graceful drain: {str(error).splitlines()[0]}")

    # ---- the loop ----------------------------------------------------------------------

    async def check(self) -> str:
        """Fail early, with one line, on what a restart cannot fix: the envoy binary (missing
        or an unsupported release, the agent's check) and a held admin port."""
        binary = find_envoy(self.settings.envoy)
        await check_version(binary)
        host, port = self.settings.admin_addr
        if port != 0:
            require_free(host, port, "--admin-addr (omit it to pick a free port)")
        return binary

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set, then drain and stop Envoy. Raises ``ConfigError``
        or ``EnvoyError`` at once for what restarting cannot fix (the binary, a held admin
        port), ``EnvoyError`` if Envoy never comes up."""
        self._binary = await self.check()
        self._workdir.mkdir(parents=True, exist_ok=True)
        forwarder = LogForwarder(self._workdir / "envoy.log", self._on_access, self._on_message)
        forwarded = asyncio.Event()
        await self.sds.start(self._sds_socket())
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(forwarder.run(forwarded))
                helpers = [tg.create_task(self.certificates.run(self.sds.subscriptions))]
                if self.identity is not None:
                    helpers.append(tg.create_task(self._keep_identity(self.identity, stop)))
                try:
                    await self._supervisor.run(stop)
                finally:
                    try:
                        await self._shutdown(drain=stop.is_set())
                    finally:
                        forwarded.set()
                        for task in helpers:
                            task.cancel()
        except BaseExceptionGroup as group:
            # the supervisor's error (Envoy never came up) comes out as itself
            raise group.exceptions[0] if len(group.exceptions) == 1 else group from None
        finally:
            await self.sds.stop()
        if self.identity is not None:
            await self.identity.set_state("failed" if self._fatal else "stopped")
        if self._fatal is not None:
            raise self._fatal

    async def _keep_identity(self, identity: GatewayIdentity, stop: asyncio.Event) -> None:
        """The identity's loops; a revoked host drains and stops the gateway (like an agent)."""
        try:
            await identity.run()
        except RefusedError as e:
            if not e.revoked:
                raise
            self._fatal = e
            self._say(f"this gateway's host credential was revoked: {e}; stopping")
            stop.set()

    def _admins(self) -> dict[str, str]:
        """The gateway's Envoy and its admin address, while it runs (config dumps)."""
        envoy = self._supervisor.current
        if self._admin is None or envoy is None or not envoy.running:
            return {}
        return {self.settings.identity.node_id: f"{self._admin[0]}:{self._admin[1]}"}

    def _sds_changed(self) -> None:
        if self.identity is not None:
            self.identity.sds_changed(self.sds.proxies.get(self.settings.identity.node_id))

    async def _shutdown(self, *, drain: bool) -> None:
        """Drain a running Envoy (when asked to stop, not when failing), then stop it."""
        envoy = self._supervisor.current
        seconds = self.settings.drain_seconds
        plan = None
        if drain and envoy is not None and envoy.running:
            self._say(f"draining (up to {seconds:g} s)")
            plan = Drain(seconds, fail_health_checks=True)
            if self.identity is not None:
                await self.identity.set_state("draining")
        await self._supervisor.shutdown(plan)
        if plan is not None:
            self._say("stopped")

    @property
    def _workdir(self) -> Path:
        return self.settings.workdir / "envoy"

    def _sds_socket(self) -> Path:
        """``<workdir>/sds/sds.sock`` (a gateway with a credential: ``<state dir>/sds.sock``),
        in a directory only this user may enter: whoever connects to the socket could ask
        for the gateway's private keys."""
        if self.host is not None:
            return self.host.state.sds_socket
        directory = self.settings.workdir.absolute() / "sds"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        return directory / "sds.sock"

    async def _start(self) -> EnvoyProcess:
        """Start one life of Envoy; it is up once its admin API answers (it may wait for its
        Gateway resource or the control plane before it is ready)."""
        host, port = self.settings.admin_addr
        admin = (host, port or free_port(host))
        self._workdir.mkdir(parents=True, exist_ok=True)
        envoy = EnvoyProcess(
            gateway_bootstrap(
                self.settings, admin, self.sds.path, mesh_identity=self.host is not None
            ),
            concurrency=self.settings.concurrency,
            log_level=self.settings.log_level,
            wait_ready=False,
            workdir=self._workdir,
            binary=self._binary,
            name=f"gateway {self.settings.namespace}/{self.settings.name}",
            extra_args=[
                "--drain-time-s",
                str(math.ceil(self.settings.drain_seconds)),
                "--drain-strategy",
                "immediate",
                "--file-flush-interval-msec",
                str(ACCESS_LOG_FLUSH_MS),
            ],
        )
        await envoy.start()
        self._admin = admin
        return envoy
