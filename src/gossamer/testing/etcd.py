"""A real ``etcd`` (Debian's ``etcd-server``) on free loopback ports with its own data dir,
for tests of the etcd store: started, stopped (or killed) and started again on the same
ports and data (to see what happens while etcd is down), always stopped at the end.

It runs with the limits docs/store.md asks of a production etcd (``--max-txn-ops``,
``--max-request-bytes``), so an apply as large as the API accepts fits in one transaction.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from gossamer.cancel import raise_if_cancelling
from gossamer.envoy.process import ManagedProcess
from gossamer.errors import ProcessError
from gossamer.polling import wait_until
from gossamer.store.etcd_url import RECOMMENDED_MAX_REQUEST_BYTES, RECOMMENDED_MAX_TXN_OPS
from gossamer.testing.ports import free_port


def etcd_installed() -> bool:
    return shutil.which("etcd") is not None


class EtcdServer:
    """One etcd member. ``url`` is what ``--store`` takes (``etcd://127.0.0.1:PORT``)."""

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        *,
        max_txn_ops: int = RECOMMENDED_MAX_TXN_OPS,
        max_request_bytes: int = RECOMMENDED_MAX_REQUEST_BYTES,
    ) -> None:
        if not etcd_installed():
            raise ProcessError(
                "etcd is not installed: apt-get install -y etcd-server (scripts/install does it)"
            )
        self.host = host
        self.port = free_port(host)
        self.peer_port = free_port(host)
        self.workdir = workdir
        self.max_txn_ops = max_txn_ops
        self.max_request_bytes = max_request_bytes
        self.process: ManagedProcess | None = None
        self.starts = 0

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"etcd://{self.endpoint}"

    async def start(self) -> None:
        """Start (or start again, on the same ports and data) and wait until healthy."""
        if self.process is not None:
            raise ProcessError("etcd is already running; stop() it first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        client = f"http://{self.endpoint}"
        peer = f"http://{self.host}:{self.peer_port}"
        argv = ["etcd", "--name", "default", "--data-dir", str(self.workdir / "data")]
        argv += ["--listen-client-urls", client, "--advertise-client-urls", client]
        argv += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
        argv += ["--initial-cluster", f"default={peer}", "--initial-cluster-state", "new"]
        argv += ["--max-txn-ops", str(self.max_txn_ops)]
        argv += ["--max-request-bytes", str(self.max_request_bytes)]
        argv += ["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]
        self.starts += 1
        log = self.workdir / f"etcd-{self.starts}.log"
        self.process = ManagedProcess(argv, log_path=log, name="etcd")
        await self.process.start()
        await wait_until(self.healthy, timeout=30, what=f"etcd on {self.endpoint} healthy")

    async def healthy(self) -> bool:
        if self.process is None or not self.process.running:
            raise ProcessError(
                f"etcd exited: {self.process.log_tail() if self.process else 'not started'}"
            )
        try:
            async with httpx.AsyncClient(timeout=1.0) as client:
                response = await client.get(f"http://{self.endpoint}/health")
            return response.status_code == 200 and response.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            raise_if_cancelling()
            return False

    async def stop(self) -> None:
        """SIGTERM (a clean stop); the data dir stays for a later ``start``."""
        if self.process is not None:
            await self.process.stop(grace=10)
            self.process = None

    async def kill(self) -> None:
        """SIGKILL: what a crash looks like to clients; the data dir stays."""
        if self.process is not None:
            await self.process.kill()
            self.process = None


@contextlib.asynccontextmanager
async def running_etcd(
    workdir: Path,
    *,
    max_txn_ops: int = RECOMMENDED_MAX_TXN_OPS,
    max_request_bytes: int = RECOMMENDED_MAX_REQUEST_BYTES,
) -> AsyncIterator[EtcdServer]:
    """An etcd for the length of the block (see ``EtcdServer``)."""
    server = EtcdServer(workdir, max_txn_ops=max_txn_ops, max_request_bytes=max_request_bytes)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
