"""A real ``etcd`` (Debian's ``etcd-server``) on free loopback ports with its own data dir,
for tests of the etcd store: started, stopped (or killed) and started again on the same
ports and data (to see what happens while etcd is down), always stopped at the end; and a
cluster of such members (``EtcdCluster``) whose leader can be found and killed.

It runs with the limits docs/store.md asks of a production etcd (``--max-txn-ops``,
``--max-request-bytes``), so an apply as large as the API accepts fits in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class EtcdTiming:
    """etcd's Raft timing (``--heartbeat-interval``, ``--election-timeout``, in ms). etcd's
    defaults (100, 1000) are for idle machines; on a loaded 2-core machine heartbeats are
    late often enough to start needless elections, so a cluster here uses ``LOADED``."""

    heartbeat_ms: int = 100
    election_ms: int = 1000


#: for members sharing two busy cores with control planes, Envoys and load (docs/reliability.md)
LOADED = EtcdTiming(heartbeat_ms=250, election_ms=2500)


class EtcdServer:
    """One etcd member. ``url`` is what ``--store`` takes (``etcd://127.0.0.1:PORT``)."""

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        *,
        max_txn_ops: int = RECOMMENDED_MAX_TXN_OPS,
        max_request_bytes: int = RECOMMENDED_MAX_REQUEST_BYTES,
        name: str = "default",
        timing: EtcdTiming | None = None,
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
        self.name = name
        self.timing = timing or EtcdTiming()
        #: ``--initial-cluster`` (set by ``EtcdCluster``; alone: this member only)
        self.initial_cluster = f"{name}={self.peer_url}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"etcd://{self.endpoint}"

    async def start(self, *, wait: bool = True) -> None:
        """Start (or start again, on the same ports and data) and, with ``wait``, wait until
        healthy (a cluster's member is healthy once the cluster has a leader)."""
        if self.process is not None:
            raise ProcessError("etcd is already running; stop() it first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        client = f"http://{self.endpoint}"
        peer = self.peer_url
        argv = ["etcd", "--name", self.name, "--data-dir", str(self.workdir / "data")]
        argv += ["--listen-client-urls", client, "--advertise-client-urls", client]
        argv += ["--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer]
        argv += ["--initial-cluster", self.initial_cluster, "--initial-cluster-state", "new"]
        argv += ["--heartbeat-interval", str(self.timing.heartbeat_ms)]
        argv += ["--election-timeout", str(self.timing.election_ms)]
        argv += ["--max-txn-ops", str(self.max_txn_ops)]
        argv += ["--max-request-bytes", str(self.max_request_bytes)]
        argv += ["--logger", "zap", "--log-outputs", "stderr", "--log-level", "warn"]
        self.starts += 1
        log = self.workdir / f"etcd-{self.starts}.log"
        self.process = ManagedProcess(argv, log_path=log, name=f"etcd {self.name}")
        await self.process.start()
        if wait:
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


class EtcdCluster:
    """``size`` etcd members on loopback forming one cluster. ``url`` names them all."""

    def __init__(self, workdir: Path, size: int = 3, *, timing: EtcdTiming = LOADED) -> None:
        self.members = [
            EtcdServer(workdir / f"m{i}", name=f"m{i}", timing=timing) for i in range(1, size + 1)
        ]
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        for member in self.members:
            member.initial_cluster = initial

    @property
    def url(self) -> str:
        return "etcd://" + ",".join(m.endpoint for m in self.members)

    async def start(self) -> None:
        """Start every member (together: each waits for the others) and wait for a leader."""
        for member in self.members:
            await member.start(wait=False)
        for member in self.members:
            await wait_until(member.healthy, timeout=60, what=f"etcd {member.name} healthy")

    async def leader(self) -> EtcdServer:
        """The member that leads now (asked over etcd's JSON gateway)."""

        async def find() -> EtcdServer | None:
            for member in self.members:
                if member.process is None:
                    continue
                try:
                    async with httpx.AsyncClient(timeout=2.0) as client:
                        status = (
                            await client.post(
                                f"http://{member.endpoint}/v3/maintenance/status", json={}
                            )
                        ).json()
                except (httpx.HTTPError, ValueError):
                    raise_if_cancelling()
                    continue
                if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                    return member
            return None

        found = await wait_until(find, timeout=30, what="an etcd leader")
        assert isinstance(found, EtcdServer)
        return found

    async def stop(self) -> None:
        await asyncio.gather(*(m.stop() for m in self.members))
