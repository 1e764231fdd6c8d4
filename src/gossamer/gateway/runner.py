"""Run one gateway Envoy and keep it running.

``GatewayRunner.run(stop)`` writes the bootstrap, starts Envoy, forwards its access log,
restarts it with back-off when it dies, and once ``stop`` is set drains it: the admin
health check fails (load balancers in front stop sending), listeners drain gracefully
(HTTP/1 responses say ``Connection: close``, HTTP/2 gets GOAWAY) until no client
connection is open or ``drain_seconds`` passed; then Envoy is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gossamer.envoy.binary import check_version, find_envoy
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.errors import EnvoyError, ProcessError
from gossamer.gateway.logs import LogForwarder
from gossamer.gateway.settings import GatewaySettings, gateway_bootstrap
from gossamer.ports import free_port, require_free

#: how often a running Envoy is checked for having exited, and a drain for being done
_POLL = 0.2
#: Envoy failing to come up this many times in a row (never reaching its admin API) is fatal
MAX_START_FAILURES = 5
#: Envoy writes buffered access-log lines at least this often (its default: every 10 s)
ACCESS_LOG_FLUSH_MS = 1000

State = Literal["starting", "running", "backing-off", "draining", "stopped"]


def _stdout(line: str) -> None:
    print(line, flush=True)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunnerStatistics:
    state: State
    pid: int | None
    admin: str | None
    starts: int
    restarts: int


class GatewayRunner:
    """``await GatewayRunner(settings).run(stop)``; ``on_access`` gets each access-log line
    (default: stdout), ``on_message`` the runner's own messages and Envoy's warnings
    (default: stderr)."""

    def __init__(
        self,
        settings: GatewaySettings,
        *,
        on_access: Callable[[str], None] = _stdout,
        on_message: Callable[[str], None] = _stderr,
    ) -> None:
        self.settings = settings
        self._on_access = on_access
        self._on_message = on_message
        self._state: State = "starting"
        self._envoy: EnvoyProcess | None = None
        self._admin: tuple[str, int] | None = None
        self._starts = 0

    # ---- introspection -----------------------------------------------------------------

    def statistics(self) -> RunnerStatistics:
        envoy = self._envoy
        return RunnerStatistics(
            state=self._state,
            pid=envoy.pid if envoy is not None and envoy.running else None,
            admin=None if self._admin is None else f"{self._admin[0]}:{self._admin[1]}",
            starts=self._starts,
            restarts=max(0, self._starts - 1),
        )

    def _say(self, text: str) -> None:
        s = self.settings
        self._on_message(f"gateway {s.namespace}/{s.name}: {text}")

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
        binary = await self.check()
        self.settings.workdir.mkdir(parents=True, exist_ok=True)
        quick_deaths = 0
        start_failures = 0
        try:
            while not stop.is_set():
                started = time.monotonic()
                came_up = await self._run_once(binary, stop)
                if stop.is_set():
                    break
                start_failures = 0 if came_up else start_failures + 1
                if start_failures >= MAX_START_FAILURES:
                    raise EnvoyError(
                        f"Envoy failed to start {start_failures} times in a row; see "
                        f"{self._log_path()} (last error above)"
                    )
                stable = time.monotonic() - started >= self.settings.restart.stable
                quick_deaths = 1 if stable else quick_deaths + 1
                delay = self.settings.restart.delay(quick_deaths)
                self._state = "backing-off"
                self._say(f"restarting Envoy in {delay:.1f} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            self._state = "stopped"

    def _log_path(self) -> str:
        return str(self.settings.workdir / "envoy" / "envoy.log")

    async def _run_once(self, binary: str, stop: asyncio.Event) -> bool:
        """One life of Envoy; whether it came up (its admin API answered)."""
        host, port = self.settings.admin_addr
        admin = (host, port or free_port(host))
        workdir = self.settings.workdir / "envoy"
        workdir.mkdir(parents=True, exist_ok=True)
        envoy = EnvoyProcess(
            gateway_bootstrap(self.settings, admin),
            concurrency=self.settings.concurrency,
            log_level=self.settings.log_level,
            wait_ready=False,  # it may wait for its Gateway resource or the control plane
            workdir=workdir,
            binary=binary,
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
        forwarder = LogForwarder(workdir / "envoy.log", self._on_access, self._on_message)
        done = asyncio.Event()
        self._state = "starting"
        self._starts += 1
        async with asyncio.TaskGroup() as tg:
            tg.create_task(forwarder.run(done))
            try:
                try:
                    await envoy.start()
                except (EnvoyError, ProcessError) as e:
                    self._say(f"Envoy did not start: {str(e).splitlines()[0]}")
                    return False
                self._envoy, self._admin = envoy, admin
                self._state = "running"
                self._say(
                    f"Envoy running (pid {envoy.pid}, admin http://{admin[0]}:{admin[1]}"
                    f", xDS {self.settings.xds_addr[0]}:{self.settings.xds_addr[1]})"
                )
                while envoy.running and not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), _POLL)
                if envoy.running:
                    await self._drain(envoy)
                    self._say("stopped")
                else:
                    self._say(f"Envoy exited with status {envoy.returncode}")
                return True
            finally:
                await envoy.terminate()
                done.set()

    async def _drain(self, envoy: EnvoyProcess) -> None:
        seconds = self.settings.drain_seconds
        self._state = "draining"
        self._say(f"draining (up to {seconds:g} s)")
        try:
            await envoy.admin_post("/healthcheck/fail")
            await envoy.admin_post("/drain_listeners", {"graceful": ""})
        except EnvoyError as e:
            self._say(f"could not start a graceful drain: {str(e).splitlines()[0]}")
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and envoy.running:
            if await self._open_connections(envoy) == 0:
                return
            await asyncio.sleep(_POLL)

    @staticmethod
    async def _open_connections(envoy: EnvoyProcess) -> int | None:
        try:
            stats = await envoy.stats(r"^listener\..*\.downstream_cx_active$")
        except EnvoyError:
            return None
        return sum(v for k, v in stats.items() if not k.startswith("listener.admin."))
