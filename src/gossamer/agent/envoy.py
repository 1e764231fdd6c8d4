"""One sidecar Envoy of the agent: start it, find it again after an agent restart, wait
for it to die, stop it (``gossamer.envoy.supervisor`` keeps it running and drains it). The
checks made before any Envoy starts, binary present and supported version, are shared with
the gateway: ``gossamer.envoy.binary``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.agent import process
from gossamer.agent.state import EnvoyRecord
from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.proxy import bootstrap_json
from gossamer.errors import EnvoyError, PollTimeoutError
from gossamer.polling import wait_until


def bootstrap_digest(bootstrap: bootstrap_pb2.Bootstrap) -> str:
    """Equal for equal bootstraps, in any process (JSON map order is not stable)."""
    return hashlib.sha256(bootstrap.SerializeToString(deterministic=True)).hexdigest()[:16]


class Sidecar:
    """A running Envoy, started by this agent or adopted from a previous one (it is never
    the agent's child: see ``gossamer.agent.process``). A ``Supervised`` for
    ``gossamer.envoy.supervisor``."""

    def __init__(self, name: str, record: EnvoyRecord) -> None:
        self.name = name
        self.record = record
        self.admin = EnvoyAdmin(record.admin, name=f"Envoy of {name}")

    @property
    def pid(self) -> int:
        return self.record.pid

    @property
    def running(self) -> bool:
        return process.is_running(self.record.pid, self.record.start_time)

    @classmethod
    async def start(
        cls,
        name: str,
        binary: str,
        bootstrap: bootstrap_pb2.Bootstrap,
        workdir: Path,
        *,
        drain_seconds: int,
        timeout: float = 30.0,  # noqa: ASYNC109
    ) -> Sidecar:
        """Write the bootstrap, start Envoy, wait until its admin API answers (not until it
        is ready: it may wait for the control plane). An Envoy that does not come up is
        stopped, also if this is cancelled: none is left behind unrecorded."""
        text = bootstrap_json(bootstrap)
        config = workdir / "bootstrap.json"
        config.write_text(text)
        log_path = workdir / "envoy.log"
        admin = bootstrap.admin.address.socket_address
        argv = [
            binary,
            "-c",
            str(config),
            "--use-dynamic-base-id",
            "--base-id-path",
            str(workdir / "base-id"),
            "--concurrency",
            "1",
            "--drain-time-s",
            str(max(drain_seconds, 1)),
            "--drain-strategy",
            "immediate",
            "--log-level",
            "info",
        ]
        pid = await process.spawn(argv, log_path, workdir / "envoy.pid")
        started = process.start_time(pid)
        record = EnvoyRecord(
            pid, started or 0, f"{admin.address}:{admin.port_value}", bootstrap_digest(bootstrap)
        )
        sidecar = cls(name, record)

        async def admin_answers() -> bool:
            if not sidecar.running:
                raise EnvoyError(
                    f"Envoy of {name} exited while starting; last lines of {log_path}:\n"
                    f"{_tail(log_path)}"
                )
            return await sidecar.admin.answers()

        try:
            await wait_until(
                admin_answers, timeout=timeout, interval=0.05, what=f"Envoy of {name} admin API"
            )
        except PollTimeoutError:
            await sidecar.stop(1.0)
            raise EnvoyError(
                f"Envoy of {name} did not open its admin API on {record.admin} within "
                f"{timeout:g} s; see {log_path}"
            ) from None
        except BaseException:
            await sidecar.stop(1.0)
            raise
        return sidecar

    @classmethod
    async def adopt(cls, name: str, record: EnvoyRecord) -> Sidecar | None:
        """The Envoy of ``record`` if it still runs and answers its admin API."""
        if not process.is_running(record.pid, record.start_time):
            return None
        sidecar = cls(name, record)
        if await sidecar.admin.answers():
            return sidecar
        await sidecar.admin.aclose()
        return None

    async def wait_exit(self) -> None:
        """Return when Envoy exits (its status is its parent's, init's, to know)."""
        if self.running:  # (a pid that is gone may since have been reused)
            await process.wait_exit(self.record.pid)

    async def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, SIGKILL after ``grace`` seconds; returns once it is gone."""
        try:
            await process.terminate(self.record.pid, self.record.start_time, grace)
        finally:
            await self.admin.aclose()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
