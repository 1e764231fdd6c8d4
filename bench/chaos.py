"""Chaos under load: what fails, and what is lost, when parts of a replicated control plane
die while traffic flows through a gateway.

Run: ``.venv/bin/python bench/chaos.py [--replicas 3] [--down 30] [--settle 5]``.

A 3-member etcd cluster (``gossamer.testing.etcd.EtcdCluster``, Raft timing for a loaded
machine), ``--replicas`` control planes on it (``gossamer control-plane`` processes, one CA:
the first replica's ``ca/`` copied to the others before they start), a ``gossamer gateway
--xds-addr`` naming every replica, and two instances of a service behind it. A bounded
load loop sends requests through the gateway the whole time. Then, one after the other:

- ``replica-killed``: SIGKILL of the replica the gateway's Envoy streams from (started again
  afterwards);
- ``singleton-leader-killed``: SIGKILL of the replica that leads the singletons
  (``/v1/statistics``), reporting how long until another leads (its lease's time to live,
  10 s), started again afterwards;
- ``telemetry-restarted``: SIGKILL of the telemetry service the replicas share
  (``--telemetry HOST:PORT``, as on a host of its own), started again after ``--settle``,
  reporting how long until it counts the gateway's requests again;
- ``all-replicas-down``: every replica stopped for ``--down`` seconds, then started again;
- ``etcd-member-restarted``: a member that does not lead, stopped and started;
- ``etcd-leader-killed``: SIGKILL of etcd's leader, started again afterwards;
- ``backend-killed``: one instance of the service stops for good.

After each, one write (a new Service) goes to a replica that runs, and the scenario waits
until the gateway serves a Route change written with it (``recover_s``: from the fault to
a write served again). Reported per scenario: requests sent and failed while it lasted,
writes acknowledged and lost. At the end every acknowledged write is read back from every
replica (lost: any missing), and the telemetry service's count of the gateway's requests
is set beside what the load sent (a figure: a killed service loses what it had not
flushed, docs/telemetry.md "Loss"). The last line is ``CHAOS scenarios=N sent=N failed=N
writes=N lost=N``; the exit status is 1 when a request failed or a write was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from _chaos_parts import CLI, Load, Replica, Row, TelemetryService, edge

from gossamer.envoy.process import ManagedProcess
from gossamer.errors import PollTimeoutError
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import admin_token
from gossamer.testing.etcd import LOADED, EtcdCluster
from gossamer.testing.mesh import service
from gossamer.testing.ports import free_port

BACKEND_HOST = "127.0.0.3"


class Chaos:
    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.etcd = EtcdCluster(workdir / "etcd")
        self.telemetry = TelemetryService(workdir / "telemetry", free_port(), free_port())
        grace, telemetry = args.store_loss_grace, self.telemetry.replica_args()
        self.replicas = [
            Replica(workdir / f"cp{i}", free_port(), free_port(), grace, telemetry)
            for i in range(1, args.replicas + 1)
        ]
        self.gw_port = free_port()
        self.load = Load(f"http://127.0.0.1:{self.gw_port}/")
        self.client = httpx.AsyncClient(timeout=10, trust_env=False)
        #: acknowledged writes: (Service name, the revision the apply answered)
        self.writes: list[tuple[str, int]] = []
        self.backends: list[HttpBackend] = []
        #: requests the bench sent to the gateway besides the load (waiting for it to serve)
        self.probes = 0

    # -- helpers ---------------------------------------------------------------------------

    def live(self) -> Replica:
        return next(r for r in self.replicas if r.running)

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

    async def write(self, scenario: str) -> None:
        """One acknowledged write (a Service), and a Route change the gateway must serve."""
        name = f"chaos-{len(self.writes) + 1}"
        self.writes.append((name, await self.apply([service(name)])))
        await self.apply(edge(self.gw_port, self.backend_addresses(), scenario)[-1:])
        await wait_until(
            lambda: self.load.marks.get(scenario, 0) > 0,
            timeout=90,
            what=f"the gateway serving the write after {scenario}",
        )

    def backend_addresses(self) -> list[tuple[str, int]]:
        return [b.address for b in self.backends]

    async def serving_replica(self) -> Replica | None:
        """The replica the gateway's Envoy streams from."""
        for replica in (r for r in self.replicas if r.running):
            try:
                r = await self.client.get(f"{replica.url}/v1/proxies")
            except httpx.TransportError:
                continue
            if any(p["name"] == "edge" and p["connected"] for p in r.json().get("items", [])):
                return replica
        return None

    async def scenario(self, name: str, fault: Callable[[], Awaitable[str]]) -> Row:
        sent, failed = self.load.sent, self.load.failed
        began = time.monotonic()
        detail = await fault()
        await self.write(name)
        recover = time.monotonic() - began
        row = Row(name, self.load.sent - sent, self.load.failed - failed, recover, detail)
        print(
            f"{name:24s} sent {row.sent:6d}  failed {row.failed:4d}  recover "
            f"{recover:6.1f} s  {detail}",
            flush=True,
        )
        return row

    # -- the faults ------------------------------------------------------------------------

    async def replica_killed(self) -> str:
        victim = await wait_until(self.serving_replica, timeout=30, what="the gateway's replica")
        assert isinstance(victim, Replica)
        await victim.stop(kill=True)
        await asyncio.sleep(self.args.settle)  # the load meets the fault meanwhile
        await victim.start(self.etcd.url)
        await wait_until(lambda: victim.ready(self.client), timeout=60, what="the replica back")
        return f"SIGKILLed {victim.data.name}"

    async def all_replicas_down(self) -> str:
        for replica in self.replicas:
            await replica.stop()
        await asyncio.sleep(self.args.down)  # the data plane alone, on its last config
        for replica in self.replicas:
            await replica.start(self.etcd.url)
        for replica in self.replicas:
            await wait_until(lambda r=replica: r.ready(self.client), timeout=60, what="ready")
        return f"all {len(self.replicas)} stopped for {self.args.down:g} s"

    async def leading(self) -> Replica | None:
        """The replica that runs the singletons (``/v1/statistics``: ``plane.leading``)."""
        for replica in (r for r in self.replicas if r.running):
            try:
                r = await self.client.get(f"{replica.url}/v1/statistics")
            except httpx.TransportError:
                continue
            if r.status_code == 200 and r.json()["plane"]["leading"]:
                return replica
        return None

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
        await asyncio.sleep(self.args.settle)
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
        await asyncio.sleep(self.args.settle)
        await member.start()
        return f"restarted {member.name} (leader {leader.name})"

    async def etcd_leader_killed(self) -> str:
        leader = await self.etcd.leader()
        await leader.kill()
        await asyncio.sleep(self.args.settle)
        await leader.start(wait=False)
        after = await self.etcd.leader()
        await wait_until(leader.healthy, timeout=60, what=f"etcd {leader.name} back")
        return f"SIGKILLed leader {leader.name}; {after.name} leads"

    async def backend_killed(self) -> str:
        gone = self.backends[0]
        await gone.close()
        await asyncio.sleep(self.args.settle)
        return f"stopped {gone.name} for good"

    # -- the run ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        await self.etcd.start()
        gateway: ManagedProcess | None = None
        backends = contextlib.AsyncExitStack()
        try:
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
            for i in (1, 2):
                backend = HttpBackend(f"shop-{i}", host=BACKEND_HOST)
                self.backends.append(await backends.enter_async_context(backend))
            await self.apply(edge(self.gw_port, self.backend_addresses(), "start"))
            xds = ",".join(f"127.0.0.1:{r.xds}" for r in self.replicas)
            argv = [*CLI, "gateway", "--name", "edge", "--server", first.url, "--xds-addr", xds]
            argv += ["--workdir", str(self.workdir / "gw"), "--drain-seconds", "1"]
            gateway = ManagedProcess(argv, log_path=self.workdir / "gateway.log", name="gateway")
            await gateway.start()
            await wait_until(self.served, timeout=90, what="the gateway serving")
            yield
        finally:
            if gateway is not None:
                await gateway.stop()
            await backends.aclose()
            for replica in self.replicas:
                await replica.stop()
            await self.telemetry.kill()
            await self.etcd.stop()
            await self.client.aclose()

    async def served(self) -> bool:
        try:
            r = await self.client.get(self.load.url)
        except httpx.TransportError:
            return False
        self.probes += 1
        return r.status_code == 200

    async def telemetry_figure(self) -> str:
        """What the telemetry service counted of the gateway's requests to ``shop``, beside
        what was sent (once all are in, or after the gateway's next export)."""
        sent = self.load.sent + self.probes
        last: list[int | None] = [None]

        async def all_in() -> bool:
            last[0] = await self.telemetry.counted(self.client)
            return last[0] is not None and last[0] >= sent

        with contextlib.suppress(PollTimeoutError):
            # (the gateway's Envoy exports every 10 s: its last export is in by then)
            await wait_until(all_in, timeout=12, what="the telemetry service's count")
        counted = last[0] or 0
        missing = sent - counted
        return f"telemetry: counted {counted} of {sent} requests to the gateway ({missing} not)"

    async def lost_writes(self) -> int:
        """Acknowledged writes some replica does not hold."""
        lost = 0
        for replica in self.replicas:
            for name, revision in self.writes:
                r = await self.client.get(f"{replica.url}/v1/resources/Service/default/{name}")
                if r.status_code != 200:
                    lost += 1
                    print(
                        f"LOST {name} (acknowledged at revision {revision}) at {replica.data.name}"
                    )
        return lost

    async def run(self) -> int:
        rows: list[Row] = []
        stop = asyncio.Event()
        async with self.running(), asyncio.TaskGroup() as tg:
            load = tg.create_task(self.load.run(stop))
            try:
                await wait_until(
                    lambda: self.load.marks.get("start", 0) > 20, timeout=90, what="traffic"
                )
                faults = {
                    "replica-killed": self.replica_killed,
                    "singleton-leader-killed": self.singleton_leader_killed,
                    "all-replicas-down": self.all_replicas_down,
                    "telemetry-restarted": self.telemetry_restarted,
                    "etcd-member-restarted": self.etcd_member_restarted,
                    "etcd-leader-killed": self.etcd_leader_killed,
                    "backend-killed": self.backend_killed,
                }
                print(f"{'scenario':24s} (load through the gateway throughout)", flush=True)
                for name, fault in faults.items():
                    rows.append(await self.scenario(name, fault))
                lost = await self.lost_writes()
            finally:
                stop.set()
            await load
            print(await self.telemetry_figure(), flush=True)
        # (all of the load: between the scenarios too)
        failed = self.load.failed
        for line in self.load.failures:
            print(f"failed request: {line}")
        print(
            f"CHAOS scenarios={len(rows)} sent={self.load.sent} failed={failed} "
            f"writes={len(self.writes)} lost={lost}",
            flush=True,
        )
        return 1 if failed or lost else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=3, help="control-plane replicas")
    parser.add_argument("--down", type=float, default=30.0, help="s every replica stays down")
    parser.add_argument("--settle", type=float, default=5.0, help="s each fault lasts at least")
    parser.add_argument(
        "--store-loss-grace", type=float, default=3.0, help="the replicas' --store-loss-grace"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep every process's log and data here (default: a "
        "temporary directory, removed at the end)",
    )
    args = parser.parse_args()
    print(
        f"etcd: 3 members, --heartbeat-interval {LOADED.heartbeat_ms} --election-timeout "
        f"{LOADED.election_ms}; {args.replicas} replicas; down {args.down:g} s; settle "
        f"{args.settle:g} s",
        flush=True,
    )
    if args.workdir is not None:
        args.workdir.mkdir(parents=True)
        sys.exit(asyncio.run(Chaos(args.workdir, args).run()))
    with tempfile.TemporaryDirectory(prefix="gossamer-chaos-") as tmp:
        code = asyncio.run(Chaos(Path(tmp), args).run())
    sys.exit(code)


if __name__ == "__main__":
    main()
