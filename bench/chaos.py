"""Chaos under load: what fails, and what is lost, when parts of a replicated control plane
die while traffic flows through a gateway.

Run: ``.venv/bin/python bench/chaos.py [--replicas 3] [--down 30] [--settle 5]``.

A 3-member etcd cluster (``gossamer.testing.etcd.EtcdCluster``, Raft timing for a loaded
machine), ``--replicas`` control planes on it (``gossamer control-plane`` processes, one CA:
the first replica's ``ca/`` copied to the others before they start), the telemetry and
rate-limit services they share, a ``gossamer gateway`` with a mesh identity naming every
replica, and two hosts with real agents (``bench/_chaos_dataplane.py``): ``shop-1`` and
``shop-2`` behind sidecars, and ``front-1`` whose sidecar calls ``shop``. The Mesh is strict
mTLS with ``certificateTTL: --certificate-ttl``. Two bounded load loops run the whole time:
through the gateway (every request asks the rate-limit service) and east-west through
front's sidecar. Then, one after the other:

- ``replica-killed``: SIGKILL of the replica the gateway's Envoy streams from (started again
  afterwards);
- ``singleton-leader-killed``: SIGKILL of the replica that leads the singletons
  (``/v1/statistics``), reporting how long until another leads (its lease's time to live,
  10 s), started again afterwards;
- ``all-replicas-down``: every replica stopped for ``--down`` seconds, then started again;
- ``telemetry-restarted``: SIGKILL of the telemetry service the replicas share
  (``--telemetry HOST:PORT``, as on a host of its own), started again after ``--settle``,
  reporting how long until it counts the gateway's requests again;
- ``ratelimit-restarted``: SIGKILL of the rate-limit service (the Mesh fails open), started
  again, reporting how long until the gateway refuses past a limit again;
- ``agent-killed``: SIGKILL of ``host-shop``'s agent (its Envoys serve on), started again,
  reporting how long until the new agent adopted them;
- ``certificates-renewed``: checks that every identity (both hosts' and the gateway's) was
  renewed at least once during the run so far, through the faults before it (waiting if
  one was not yet);
- ``etcd-member-restarted``: a member that does not lead, stopped and started;
- ``etcd-leader-killed``: SIGKILL of etcd's leader, started again afterwards;
- ``backend-killed``: ``shop-1``'s app stops for good (its sidecar stays).

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
import re
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
from _chaos_dataplane import DataPlane, mesh_manifests
from _chaos_parts import CLI, Load, Row, edge
from _chaos_planes import Planes

from gossamer.envoy.process import ManagedProcess
from gossamer.errors import PollTimeoutError
from gossamer.polling import wait_until
from gossamer.testing.etcd import LOADED
from gossamer.testing.mesh import service
from gossamer.testing.ports import free_port


class Chaos:
    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.workdir = workdir
        self.args = args
        self.client = httpx.AsyncClient(timeout=10, trust_env=False)
        self.mesh = DataPlane(workdir, self.client, args.settle)
        self.planes = Planes(
            workdir,
            self.client,
            replicas=args.replicas,
            settle=args.settle,
            down=args.down,
            grace=args.store_loss_grace,
            services=["--ratelimit", f"127.0.0.1:{self.mesh.ratelimit.port}"],
        )
        self.gw_port = free_port()
        self.load = Load(f"http://127.0.0.1:{self.gw_port}/")
        #: acknowledged writes: (Service name, the revision the apply answered)
        self.writes: list[tuple[str, int]] = []
        #: requests the bench sent to the gateway besides the load (waiting for it to serve)
        self.probes = 0

    # -- helpers ---------------------------------------------------------------------------

    @property
    def loads(self) -> list[Load]:
        return [self.load] + ([self.mesh.load] if self.mesh.load else [])

    def sent(self) -> int:
        return sum(load.sent for load in self.loads)

    def failed(self) -> int:
        return sum(load.failed for load in self.loads)

    async def write(self, scenario: str) -> None:
        """One acknowledged write (a Service), and a Route change the gateway must serve."""
        name = f"chaos-{len(self.writes) + 1}"
        self.writes.append((name, await self.planes.apply([service(name)])))
        await self.planes.apply(edge(self.gw_port, scenario)[-1:])
        await wait_until(
            lambda: self.load.marks.get(scenario, 0) > 0,
            timeout=90,
            what=f"the gateway serving the write after {scenario}",
        )

    async def scenario(self, name: str, fault: Callable[[], Awaitable[str]]) -> Row:
        sent, failed = self.sent(), self.failed()
        began = time.monotonic()
        detail = await fault()
        await self.write(name)
        recover = time.monotonic() - began
        row = Row(name, self.sent() - sent, self.failed() - failed, recover, detail)
        print(
            f"{name:24s} sent {row.sent:6d}  failed {row.failed:4d}  recover "
            f"{recover:6.1f} s  {detail}",
            flush=True,
        )
        return row

    # -- the faults ------------------------------------------------------------------------

    # -- the run ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        gateway: ManagedProcess | None = None
        try:
            await self.planes.start()
            await self.mesh.start_services(self.planes)
            await self.planes.apply(mesh_manifests(self.args.certificate_ttl))
            await self.planes.apply(edge(self.gw_port, "start"))
            await self.mesh.start_hosts(self.planes)
            gateway = await self.start_gateway()
            await wait_until(self.served, timeout=90, what="the gateway serving")
            await self.mesh.start_east_west()
            yield
        finally:
            if gateway is not None:
                await gateway.stop()
            await self.mesh.stop()
            await self.planes.stop()
            await self.client.aclose()

    async def start_gateway(self) -> ManagedProcess:
        """``gossamer gateway`` with a mesh identity (a gateway join token), naming every
        replica."""
        token = await self.mesh.join_token(self.planes.replicas[0].url, {"gateway": "default/edge"})
        argv = [*CLI, "gateway", "--name", "edge", "--server", self.planes.urls]
        argv += ["--xds-tls-addr", self.planes.xds_tls]
        argv += ["--token", token, "--state-dir", str(self.mesh.gateway_state.path)]
        argv += ["--workdir", str(self.workdir / "gw"), "--drain-seconds", "1"]
        gateway = ManagedProcess(argv, log_path=self.workdir / "gateway.log", name="gateway")
        await gateway.start()
        return gateway

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
        sent = self.load.sent + self.probes + self.mesh.probes  # (429s are requests too)
        last: list[int | None] = [None]

        async def all_in() -> bool:
            last[0] = await self.planes.telemetry.counted(self.client)
            return last[0] is not None and last[0] >= sent

        with contextlib.suppress(PollTimeoutError):
            # (the gateway's Envoy exports every 10 s: its last export is in by then)
            await wait_until(all_in, timeout=12, what="the telemetry service's count")
        counted = last[0] or 0
        missing = sent - counted
        return f"telemetry: counted {counted} of {sent} requests to the gateway ({missing} not)"

    async def run(self) -> int:
        rows: list[Row] = []
        stop = asyncio.Event()
        async with self.running():
            async with asyncio.TaskGroup() as tg:
                for load in self.loads:
                    tg.create_task(load.run(stop))
                tg.create_task(self.mesh.certificates.watch(stop))
                try:
                    await wait_until(
                        lambda: self.load.marks.get("start", 0) > 20, timeout=90, what="traffic"
                    )
                    gateway = f"http://127.0.0.1:{self.gw_port}/"
                    ttl_s = 60.0 * int(self.args.certificate_ttl.removesuffix("m"))
                    planes, mesh = self.planes, self.mesh
                    faults = {
                        "replica-killed": planes.replica_killed,
                        "singleton-leader-killed": planes.singleton_leader_killed,
                        "all-replicas-down": planes.all_replicas_down,
                        "telemetry-restarted": planes.telemetry_restarted,
                        "ratelimit-restarted": lambda: mesh.ratelimit_restarted(gateway, planes),
                        "agent-killed": mesh.agent_killed,
                        "certificates-renewed": lambda: mesh.certificates_renewed(ttl_s),
                        "etcd-member-restarted": planes.etcd_member_restarted,
                        "etcd-leader-killed": planes.etcd_leader_killed,
                        "backend-killed": mesh.backend_killed,
                    }
                    print(
                        f"{'scenario':24s} (load through the gateway and east-west throughout)",
                        flush=True,
                    )
                    for name, fault in faults.items():
                        rows.append(await self.scenario(name, fault))
                    lost = await self.planes.lost_writes(self.writes)
                finally:
                    stop.set()
            print(await self.telemetry_figure(), flush=True)
            print(self.mesh.certificates.summary(), flush=True)
            print(await self.mesh.east_west_mtls(), flush=True)
        # (all of the load: between the scenarios too)
        for load in self.loads:
            for line in load.failures:
                print(f"failed request: {load.url} {line}")
        failed = self.failed()
        print(
            f"CHAOS scenarios={len(rows)} sent={self.sent()} failed={failed} "
            f"writes={len(self.writes)} lost={lost}",
            flush=True,
        )
        return 1 if failed or lost else 0


def certificate_ttl(text: str) -> str:
    """``--certificate-ttl``: whole minutes, ``Nm`` (the Mesh's ``certificateTTL``)."""
    if not re.fullmatch(r"[1-9][0-9]*m", text):
        raise argparse.ArgumentTypeError(f"{text!r}: write whole minutes, e.g. 2m")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=3, help="control-plane replicas")
    parser.add_argument("--down", type=float, default=30.0, help="s every replica stays down")
    parser.add_argument("--settle", type=float, default=5.0, help="s each fault lasts at least")
    parser.add_argument(
        "--certificate-ttl",
        type=certificate_ttl,
        default="2m",
        help="the Mesh's certificateTTL (certificates are renewed at about half of it)",
    )
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
        f"{args.settle:g} s; certificateTTL {args.certificate_ttl}",
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
