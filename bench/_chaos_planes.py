"""The control-plane side of ``bench/chaos.py``: a 3-member etcd, the replicas on it (one
CA: the first replica's ``ca/`` copied to the others before they start), the telemetry
service they share, and the faults that strike them."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from _chaos_parts import Replica, TelemetryService

from gossamer.polling import wait_until
from gossamer.testing.controlplane import admin_token
from gossamer.testing.etcd import EtcdCluster
from gossamer.testing.ports import free_port


class Planes:
    """``replicas`` control planes on one etcd; ``services``: more flags for each (the
    rate-limit service's address)."""

    def __init__(
        self,
        workdir: Path,
        client: httpx.AsyncClient,
        *,
        replicas: int,
        settle: float,
        down: float,
        grace: float,
        services: list[str],
    ) -> None:
        self.client = client
        self.settle, self.down = settle, down
        self.etcd = EtcdCluster(workdir / "etcd")
        self.telemetry = TelemetryService(workdir / "telemetry", free_port(), free_port())
        flags = [*self.telemetry.replica_args(), *services]
        self.replicas = [
            Replica(workdir / f"cp{i}", free_port(), free_port(), free_port(), grace, flags)
            for i in range(1, replicas + 1)
        ]

    async def start(self) -> None:
        """etcd, the telemetry service, then every replica (the client then holds the
        first one's operator token)."""
        await self.etcd.start()
        await self.telemetry.start()
        for replica in self.replicas:
            self.telemetry.give_token(replica.data)
        first = self.replicas[0]
        await first.start(self.etcd.url)
        await wait_until(lambda: first.ready(self.client), timeout=60, what="replica 1")
        self.client.headers["Authorization"] = f"Bearer {admin_token(first.data)}"
        for replica in self.replicas[1:]:  # one CA: the first replica's
            shutil.copytree(first.data / "ca", replica.data / "ca")
            await replica.start(self.etcd.url)
        for replica in self.replicas[1:]:
            await wait_until(lambda r=replica: r.ready(self.client), timeout=60, what="ready")

    async def stop(self) -> None:
        for replica in self.replicas:
            await replica.stop()
        await self.telemetry.kill()
        await self.etcd.stop()

    @property
    def urls(self) -> str:
        """Every replica's API, comma-separated (as hosts are told)."""
        return ",".join(r.url for r in self.replicas)

    @property
    def xds_tls(self) -> str:
        """Every replica's mTLS xDS address, comma-separated."""
        return ",".join(f"127.0.0.1:{r.xds_tls}" for r in self.replicas)

    async def apply(self, manifests: list[dict[str, object]]) -> int:
        """Apply through a running replica (another one when it answers 503); the revision."""

        last: list[str] = []

        async def attempt() -> int | None:
            for replica in (r for r in self.replicas if r.running):
                try:
                    r = await self.client.post(
                        f"{replica.url}/v1/apply", json={"manifests": manifests}
                    )
                except httpx.TransportError as e:
                    last[:] = [f"{replica.data.name}: {e!r}"]
                    continue
                if r.status_code == 200:
                    return int(r.json()["revision"])
                last[:] = [f"{replica.data.name}: {r.status_code} {r.text[:300]}"]
            return None

        try:
            found = await wait_until(attempt, timeout=60, what="a replica that takes the write")
        except TimeoutError:
            raise RuntimeError(f"no replica took the write; the last answer: {last}") from None
        assert isinstance(found, int)
        return found

    async def answering(self, path: str, says: Callable[[Any], bool]) -> Replica | None:
        """The first running replica whose JSON answer to ``GET path`` ``says`` so."""
        for replica in (r for r in self.replicas if r.running):
            try:
                r = await self.client.get(f"{replica.url}{path}")
            except httpx.TransportError:
                continue
            if r.status_code == 200 and says(r.json()):
                return replica
        return None

    async def serving_replica(self) -> Replica | None:
        """The replica the gateway's Envoy streams from."""
        return await self.answering(
            "/v1/proxies", lambda a: any(p["name"] == "edge" and p["connected"] for p in a["items"])
        )

    async def replica_killed(self) -> str:
        victim = await wait_until(self.serving_replica, timeout=30, what="the gateway's replica")
        assert isinstance(victim, Replica)
        await victim.stop(kill=True)
        await asyncio.sleep(self.settle)  # the load meets the fault meanwhile
        await victim.start(self.etcd.url)
        await wait_until(lambda: victim.ready(self.client), timeout=60, what="the replica back")
        return f"SIGKILLed {victim.data.name}"

    async def all_replicas_down(self) -> str:
        async with asyncio.TaskGroup() as tg:  # (all at once: each drains its streams)
            for replica in self.replicas:
                tg.create_task(replica.stop())
        await asyncio.sleep(self.down)  # the data plane alone, on its last config
        for replica in self.replicas:
            await replica.start(self.etcd.url)
        for replica in self.replicas:
            await wait_until(lambda r=replica: r.ready(self.client), timeout=60, what="ready")
        return f"all {len(self.replicas)} stopped for {self.down:g} s"

    async def leading(self) -> Replica | None:
        """The replica that runs the singletons (``/v1/statistics``: ``plane.leading``)."""
        return await self.answering("/v1/statistics", lambda a: bool(a["plane"]["leading"]))

    async def singleton_leader_killed(self) -> str:
        victim = await wait_until(self.leading, timeout=60, what="the singletons' leader")
        assert isinstance(victim, Replica)
        await victim.stop(kill=True)
        killed = time.monotonic()
        after = await wait_until(self.leading, timeout=60, what="another leader")
        assert isinstance(after, Replica)
        took = time.monotonic() - killed
        await victim.start(self.etcd.url)
        await wait_until(lambda: victim.ready(self.client), timeout=60, what="the replica back")
        return f"SIGKILLed {victim.data.name}; {after.data.name} leads after {took:.1f} s"

    async def telemetry_restarted(self) -> str:
        await wait_until(
            lambda: self.telemetry.counted(self.client), timeout=60, what="telemetry counting"
        )
        await self.telemetry.kill()
        await asyncio.sleep(self.settle)
        await self.telemetry.start()
        started = time.monotonic()
        back = await wait_until(
            lambda: self.telemetry.counted(self.client), timeout=60, what="telemetry answering"
        )
        assert isinstance(back, int)

        async def counting_again() -> bool:
            now = await self.telemetry.counted(self.client)
            return now is not None and now > back

        # (the gateway's Envoy exports its stats every 10 s)
        await wait_until(counting_again, timeout=60, what="the telemetry service counting")
        took = time.monotonic() - started
        return f"SIGKILLed telemetry serve; counting again {took:.1f} s after its start"

    async def etcd_member_restarted(self) -> str:
        leader = await self.etcd.leader()
        member = next(m for m in self.etcd.members if m is not leader)
        await member.stop()
        await asyncio.sleep(self.settle)
        await member.start()
        return f"restarted {member.name} (leader {leader.name})"

    async def etcd_leader_killed(self) -> str:
        leader = await self.etcd.leader()
        await leader.kill()
        await asyncio.sleep(self.settle)
        await leader.start(wait=False)
        after = await self.etcd.leader()
        await wait_until(leader.healthy, timeout=60, what=f"etcd {leader.name} back")
        return f"SIGKILLed leader {leader.name}; {after.name} leads"

    async def lost_writes(self, writes: list[tuple[str, int]]) -> int:
        """Acknowledged ``writes`` (a Service's name, the revision the apply answered) some
        replica does not hold."""
        lost = 0
        for replica in self.replicas:
            for name, revision in writes:
                r = await self.client.get(f"{replica.url}/v1/resources/Service/default/{name}")
                if r.status_code != 200:
                    lost += 1
                    print(
                        f"LOST {name} (acknowledged at revision {revision}) at {replica.data.name}"
                    )
        return lost
