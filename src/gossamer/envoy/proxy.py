"""Run a real Envoy as our child: write its bootstrap, start it, wait until it is ready.

``EnvoyProcess`` is an async context manager for tests and the Envoy the gateway keeps
running (``gossamer.envoy.supervisor``); it does not depend on pytest. Its admin API is an
``EnvoyAdmin`` (``envoy.admin``). Each Envoy gets a dynamic base id (so many can
run on one host) and an admin port picked by Envoy itself on loopback, read back from
``--admin-address-path`` (no race for a free port).
"""

from __future__ import annotations

import asyncio
import inspect
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from envoy.config.bootstrap.v3 import bootstrap_pb2
from google.protobuf import json_format

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.binary import find_envoy as find_envoy  # (validate.py imports it here)
from gossamer.envoy.process import ManagedProcess
from gossamer.errors import ConfigError, EnvoyError, PollTimeoutError
from gossamer.polling import wait_until

LOG_LEVELS = ("trace", "debug", "info", "warning", "warn", "error", "critical", "off")


def bootstrap_json(bootstrap: bootstrap_pb2.Bootstrap) -> str:
    """The bootstrap as JSON, the form Envoy reads from a ``.json`` file."""
    return json_format.MessageToJson(bootstrap, preserving_proto_field_name=True)


class EnvoyProcess:
    """A running Envoy; use ``async with EnvoyProcess(bootstrap) as envoy:``.

    ``wait_ready`` waits until the admin ``/ready`` says LIVE; an Envoy that waits for an
    xDS server that is not up yet may need ``wait_ready=False``. ``workdir`` (kept) holds
    the bootstrap and ``envoy.log``; without it a temporary directory is used and removed.
    """

    def __init__(
        self,
        bootstrap: bootstrap_pb2.Bootstrap,
        *,
        concurrency: int = 1,
        log_level: str = "info",
        wait_ready: bool = True,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
        workdir: Path | None = None,
        extra_args: Sequence[str] = (),
        binary: str | None = None,
        env: Mapping[str, str] | None = None,
        name: str = "envoy",
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"EnvoyProcess: concurrency must be >= 1, got {concurrency}")
        if log_level not in LOG_LEVELS:
            raise ConfigError(
                f"EnvoyProcess: log_level {log_level!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        self.bootstrap = bootstrap_pb2.Bootstrap()
        self.bootstrap.CopyFrom(bootstrap)
        if not self.bootstrap.admin.HasField("address"):
            self.bootstrap.admin.address.socket_address.address = "127.0.0.1"
            self.bootstrap.admin.address.socket_address.port_value = 0
        self.name = name
        self._concurrency = concurrency
        self._log_level = log_level
        self._wait_ready = wait_ready
        self._start_timeout = start_timeout
        self._stop_timeout = stop_timeout
        self._given_workdir = workdir
        self._workdir: Path | None = None
        self._extra_args = list(extra_args)
        self._binary = binary
        self._env = env
        self._process: ManagedProcess | None = None
        self._admin: EnvoyAdmin | None = None
        self.admin_address: tuple[str, int] | None = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.terminate()

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start Envoy and wait until its admin API answers (and, by default, it is LIVE)."""
        if self._process is not None:
            raise EnvoyError(f"{self.name} was already started")
        if self._given_workdir is not None:
            self._given_workdir.mkdir(parents=True, exist_ok=True)
            self._workdir = self._given_workdir
        else:
            self._workdir = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="envoy-"))
        config = self._workdir / "bootstrap.json"
        address_file = self._workdir / "admin-address"
        address_file.unlink(missing_ok=True)
        config.write_text(bootstrap_json(self.bootstrap))
        argv = [
            self._binary or find_envoy(),
            "-c",
            str(config),
            "--use-dynamic-base-id",
            "--base-id-path",
            str(self._workdir / "base-id"),
            "--admin-address-path",
            str(address_file),
            "--concurrency",
            str(self._concurrency),
            "--log-level",
            self._log_level,
            *self._extra_args,
        ]
        self._process = ManagedProcess(
            argv, log_path=self._workdir / "envoy.log", name=self.name, env=self._env
        )
        try:
            await self._process.start()
            await self._wait_started(address_file)
        except BaseException:
            await self.terminate()
            raise

    async def _wait_started(self, address_file: Path) -> None:
        def admin_address() -> str:
            self._check_running("while starting")
            return address_file.read_text().strip() if address_file.exists() else ""

        try:
            text = str(
                await wait_until(
                    admin_address,
                    timeout=self._start_timeout,
                    what=f"{self.name} admin address file",
                )
            )
            host, _, port = text.rpartition(":")
            self.admin_address = (host.strip("[]"), int(port))
            self._admin = EnvoyAdmin(text, name=self.name, diagnose=self._exit_report)
            if self._wait_ready:
                await wait_until(
                    self._is_ready, timeout=self._start_timeout, what=f"{self.name} /ready"
                )
        except PollTimeoutError as exc:
            raise EnvoyError(
                f"{self.name} did not become ready: {exc}\n{self._log_report()}"
            ) from exc

    async def _is_ready(self) -> bool:
        self._check_running("while starting")
        return await self.admin.ready()

    async def terminate(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; removes a temporary workdir."""
        return await self.stop(self._stop_timeout)

    async def stop(self, grace: float) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; removes a temporary workdir. The
        exit status (None if it never started)."""
        try:
            if self._admin is not None:
                await self._admin.aclose()
                self._admin = None
            if self._process is not None:
                return await self._process.stop(grace)
            return None
        finally:
            self._remove_workdir()

    async def wait_exit(self) -> int | None:
        """Return once Envoy has exited; its exit status."""
        return None if self._process is None else await self._process.wait()

    async def kill(self) -> int | None:
        """SIGKILL Envoy now (a crash, for tests of what happens next); the exit status."""
        return None if self._process is None else await self._process.kill()

    def _remove_workdir(self) -> None:
        if self._workdir is not None and self._given_workdir is None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    # ---- state -------------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._require_process().pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.returncode

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    @property
    def log_path(self) -> Path:
        return self._require_process().log_path

    def log_tail(self, max_lines: int = 40) -> str:
        return "" if self._process is None else self._process.log_tail(max_lines)

    @property
    def base_id(self) -> int:
        """The dynamic base id Envoy chose (hot-restart shared memory namespace)."""
        if self._workdir is None:
            raise EnvoyError(f"{self.name} has not been started")
        return int((self._workdir / "base-id").read_text().strip())

    def _require_process(self) -> ManagedProcess:
        if self._process is None:
            raise EnvoyError(f"{self.name} has not been started; use `async with`")
        return self._process

    def _check_running(self, doing: str) -> None:
        process = self._require_process()
        if not process.running:
            raise EnvoyError(
                f"{self.name} exited with status {process.returncode} {doing}\n{self._log_report()}"
            )

    # ---- admin API ---------------------------------------------------------------------

    @property
    def admin(self) -> EnvoyAdmin:
        """The admin API client (its errors name this Envoy; if it died, with its log)."""
        if self._admin is None:
            raise EnvoyError(f"{self.name} admin API is not available (not started or stopped)")
        return self._admin

    def _exit_report(self) -> str | None:
        process = self._process
        if process is None or process.running:
            return None
        return f"{self.name} exited with status {process.returncode}\n{self._log_report()}"

    def _log_report(self) -> str:
        """Envoy's error lines first (its start-up banner lists ~100 extensions and pushes
        the one line that says why it exited out of a short tail), then the last lines."""
        tail = self.log_tail(200).splitlines()
        errors = [line for line in tail if "][critical][" in line or "][error][" in line]
        shown = (
            f"--- errors in {self.log_path} ---\n" + "\n".join(errors[-10:]) + "\n"
            if errors
            else ""
        )
        return shown + f"--- last lines of {self.log_path} ---\n" + "\n".join(tail[-20:])

    # shorthands for tests: ``await envoy.stats()`` rather than ``await envoy.admin.stats()``

    async def admin_get(self, path: str, params: Mapping[str, str] | None = None) -> str:
        return await self.admin.get(path, params)

    async def admin_post(self, path: str, params: Mapping[str, str] | None = None) -> str:
        return await self.admin.post(path, params)

    async def stats(self, filter_regex: str | None = None) -> dict[str, int]:
        return await self.admin.stats(filter_regex)

    async def listener_addresses(self) -> dict[str, tuple[str, int]]:
        return await self.admin.listener_addresses()

    async def config_dump(
        self, *, include_eds: bool = False, resource: str | None = None
    ) -> dict[str, Any]:
        return await self.admin.config_dump(include_eds=include_eds, resource=resource)

    async def wait_for(
        self,
        predicate: Callable[[], object] | Callable[[], Awaitable[object]],
        timeout: float = 10.0,  # noqa: ASYNC109 (polling deadline)
        *,
        interval: float = 0.02,
        what: str = "condition",
    ) -> object:
        """Poll ``predicate`` until truthy (its value); fails fast if Envoy exits."""

        async def check() -> object:
            self._check_running(f"while waiting for {what}")
            value = predicate()
            return await value if inspect.isawaitable(value) else value

        return await wait_until(check, timeout=timeout, interval=interval, what=what)

    async def wait_for_stat(
        self,
        name: str,
        at_least: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> int:
        """Wait until the counter or gauge ``name`` is >= ``at_least``; its value."""

        async def value() -> tuple[int] | None:
            current = (await self.stats(f"^{re.escape(name)}$")).get(name, 0)
            return (current,) if current >= at_least else None

        result = await self.wait_for(value, timeout, what=f"stat {name} >= {at_least}")
        assert isinstance(result, tuple)
        return int(result[0])
