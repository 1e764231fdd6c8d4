"""The meshed side of ``bench/chaos.py``: two hosts with real agents and sidecars, the
rate-limit service the replicas share, the workloads' certificates, and the faults that
strike them.

- ``host-shop`` (127.0.0.3) runs ``shop-1`` and ``shop-2``, each an app behind its sidecar;
  ``host-front`` (127.0.0.2) runs ``front-1``, whose sidecar the east-west load calls
  ``shop`` through (the address ``gossamer agent env`` gives). The Mesh is strict mTLS
  with a short ``certificateTTL``, so every certificate (the gateway's too) is renewed
  several times during the run, through whichever replica answers.
- The agents joined with every replica (``--server A,B,C``, ``--xds-tls A,B,C``), as an
  operator would join a replicated control plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from _chaos_parts import CLI, Load, manifest
from _chaos_planes import Planes

from gossamer.agent.state import StateDir
from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.leftovers import kill_envoys_under
from gossamer.testing.ports import free_port

SHOP_HOST, FRONT_HOST = "127.0.0.3", "127.0.0.2"
TRUST_DOMAIN = "chaos.local"
#: the key the rate-limit probes count under, and the limit (per minute) they meet
PROBE_HEADER, PROBE_LIMIT = "x-chaos-key", 2

Apply = Callable[[list[dict[str, object]]], Awaitable[int]]


def mesh_manifests(certificate_ttl: str) -> list[dict[str, object]]:
    mtls = {"mode": "strict", "certificateTTL": certificate_ttl}
    return [
        manifest("Mesh", "default", {"trustDomain": TRUST_DOMAIN, "mtls": mtls}),
        manifest("Service", "front", {"ports": [{"name": "http", "port": 8080}]}),
    ]


@dataclass
class AgentHost:
    """One host: ``gossamer agent join`` with every replica, then ``gossamer agent run``."""

    name: str
    address: str
    workdir: Path
    workloads: list[dict[str, Any]]
    process: ManagedProcess | None = None
    runs: int = 0

    @property
    def state(self) -> StateDir:
        return StateDir(self.workdir / "state")

    async def join(self, token: str, planes: Planes) -> None:
        argv = [*CLI, "agent", "join", "--server", planes.urls, "--token", token]
        argv += ["--state-dir", str(self.workdir / "state"), "--host", self.name]
        argv += ["--xds-tls", planes.xds_tls]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            raise RuntimeError(f"agent join {self.name} failed: {out.decode()}")

    async def start(self) -> None:
        config = self.workdir / "workloads.yaml"
        config.write_text(
            yaml.safe_dump(
                {"host": self.name, "address": self.address, "drainSeconds": 1}
                | {"workloads": self.workloads}
            )
        )
        self.runs += 1
        argv = [*CLI, "agent", "run", "--state-dir", str(self.workdir / "state")]
        log = self.workdir / f"agent-{self.runs}.log"
        self.process = ManagedProcess([*argv, "-f", str(config)], log_path=log, name=self.name)
        await self.process.start()

    async def running(self) -> bool:
        """This run registered and every Envoy runs (or was adopted)."""
        assert self.process is not None
        if not self.process.running:
            raise RuntimeError(f"agent {self.name} exited:\n{self.process.log_tail()}")
        s = self.state.status() or {}
        if s.get("pid") != self.process.pid or s.get("state") != "running":
            return False
        states = [w["envoy"]["state"] for w in s.get("workloads", {}).values()]
        return bool(s.get("registered")) and all(e in ("running", "adopted") for e in states)

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()
            self.process = None

    async def env(self) -> dict[str, str]:
        argv = [*CLI, "agent", "env", "--state-dir", str(self.workdir / "state")]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        lines = out.decode().splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    async def cleanup(self) -> None:
        """Stop the agent and any Envoy it left (the bench leaves no orphan)."""
        if self.process is not None:
            await self.process.stop(30)
        kill_envoys_under(self.workdir)


def serials(state: StateDir) -> dict[str, str]:
    """The certificate serial each identity of a host (or gateway) serves now."""
    identities = (state.status() or {}).get("identities", {})
    return {k: v["serial"] for k, v in identities.items() if v.get("serial")}


@dataclass
class Certificates:
    """Every certificate serial the hosts and the gateway served during the run."""

    states: dict[str, StateDir]
    seen: dict[str, list[str]] = field(default_factory=dict)

    def look(self) -> None:
        for where, state in self.states.items():
            for identity, serial in serials(state).items():
                served = self.seen.setdefault(f"{where} {identity}", [])
                if serial not in served:
                    served.append(serial)

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.look()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)

    def renewals(self) -> int:
        return sum(len(s) - 1 for s in self.seen.values())

    def summary(self) -> str:
        each = ", ".join(f"{k} {len(s) - 1}" for k, s in sorted(self.seen.items()))
        return f"certificates renewed during the run: {self.renewals()} ({each})"

    async def all_renewed(self, timeout: float) -> float:  # noqa: ASYNC109
        """Wait until every identity was renewed at least once since the run began (at
        once if they all were: renewals go on through the faults); the seconds it took."""
        began = time.monotonic()

        def renewed() -> bool:
            self.look()
            return bool(self.seen) and all(len(s) > 1 for s in self.seen.values())

        await wait_until(renewed, timeout=timeout, interval=0.5, what="every certificate renewed")
        return time.monotonic() - began


@dataclass
class RateLimitService:
    """One ``gossamer ratelimit serve`` the replicas share (``--ratelimit HOST:PORT``),
    following every replica's rules (``--server A,B,C``) with a read-only token."""

    workdir: Path
    port: int
    token: str = ""
    process: ManagedProcess | None = None

    async def start(self, planes: Planes) -> None:
        argv = [*CLI, "ratelimit", "serve", "--listen", f"127.0.0.1:{self.port}"]
        argv += ["--server", planes.urls]
        self.workdir.mkdir(exist_ok=True)
        log = self.workdir / "ratelimit.log"
        env = {**os.environ, "GOSSAMER_TOKEN": self.token}  # (never on a command line)
        self.process = ManagedProcess(argv, log_path=log, name="ratelimit serve", env=env)
        await self.process.start()

    async def kill(self) -> None:
        if self.process is not None:
            await self.process.kill()
            self.process = None


async def limits_enforced(client: httpx.AsyncClient, url: str) -> bool:
    """Does the gateway refuse a fresh key's request past ``PROBE_LIMIT`` (429)? Sends at
    most ``PROBE_LIMIT + 1`` requests to ``url``."""
    key = uuid.uuid4().hex
    for _ in range(PROBE_LIMIT + 1):
        try:
            r = await client.get(url, headers={PROBE_HEADER: key})
        except httpx.TransportError:
            return False
        if r.status_code == 429:
            return True
    return False


def shop_hosts(workdir: Path, apps: dict[str, HttpBackend]) -> list[AgentHost]:
    def workload(name: str, service: str, **extra: Any) -> dict[str, Any]:
        host, port = apps[name].address
        return {"name": name, "service": service, "appAddress": host, "appPort": port} | extra

    return [
        AgentHost(
            "host-shop",
            SHOP_HOST,
            workdir / "host-shop",
            [workload("shop-1", "shop"), workload("shop-2", "shop")],
        ),
        AgentHost(
            "host-front",
            FRONT_HOST,
            workdir / "host-front",
            [workload("front-1", "front", dependencies=[{"service": "shop"}])],
        ),
    ]


class DataPlane:
    """The apps, the two agent hosts, the rate-limit service, the east-west load and the
    certificates, with the faults that strike them."""

    def __init__(self, workdir: Path, client: httpx.AsyncClient, settle: float) -> None:
        self.workdir = workdir
        self.client = client
        self.settle = settle
        self.ratelimit = RateLimitService(workdir / "ratelimit", free_port())
        self.apps: dict[str, HttpBackend] = {}
        self.hosts: list[AgentHost] = []
        self.gateway_state = StateDir(workdir / "gw-state")
        self.certificates = Certificates({"gateway": self.gateway_state})
        #: the east-west load (through front's sidecar), once the mesh serves
        self.load: Load | None = None
        #: requests the rate-limit probes sent through the gateway
        self.probes = 0
        self._stack = contextlib.AsyncExitStack()

    async def join_token(self, url: str, scope: dict[str, object]) -> str:
        r = await self.client.post(f"{url}/v1/tokens", json={"ttlSeconds": 600, "scope": scope})
        r.raise_for_status()
        return str(r.json()["token"])

    async def start_services(self, planes: Planes) -> None:
        """The rate-limit service, following every replica with a read-only token."""
        body = {"name": "chaos-ratelimit", "readOnly": True}
        r = await self.client.post(f"{planes.replicas[0].url}/v1/operator-tokens", json=body)
        r.raise_for_status()
        self.ratelimit.token = str(r.json()["token"])
        await self.ratelimit.start(planes)

    async def start_hosts(self, planes: Planes) -> None:
        for name, address in (
            ("shop-1", SHOP_HOST),
            ("shop-2", SHOP_HOST),
            ("front-1", FRONT_HOST),
        ):
            app = HttpBackend(name, host=address)
            self.apps[name] = await self._stack.enter_async_context(app)
        self.hosts = shop_hosts(self.workdir, self.apps)
        anything: dict[str, object] = {"anyService": True, "anyNamespace": True}
        for host in self.hosts:
            await host.join(await self.join_token(planes.replicas[0].url, anything), planes)
            await host.start()
            self.certificates.states[host.name] = host.state
        for host in self.hosts:
            await wait_until(host.running, timeout=90, what=f"agent {host.name} running")

    async def start_east_west(self) -> None:
        front = next(h for h in self.hosts if h.name == "host-front")
        load = Load(f"http://{(await front.env())['SHOP_ADDR']}/")

        async def served() -> bool:
            try:
                return (await self.client.get(load.url)).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(served, timeout=90, what="front's sidecar reaching shop")
        self.load = load

    async def east_west_mtls(self) -> str:
        """How many of front's connections to ``shop`` were mTLS (its Envoy's stats)."""
        front = next(h for h in self.hosts if h.name == "host-front")
        admin = (front.state.status() or {})["workloads"]["default/front-1"]["envoy"]["admin"]
        async with EnvoyAdmin(admin) as envoy:
            stats = await envoy.stats(r"^cluster\.outbound\|default/shop\|http\.")
        prefix = "cluster.outbound|default/shop|http."
        tls, total = (
            stats.get(f"{prefix}ssl.handshake", 0),
            stats.get(f"{prefix}upstream_cx_total", 0),
        )
        return f"east-west: {tls} of {total} connections from front to shop over mTLS"

    async def stop(self) -> None:
        for host in self.hosts:
            await host.cleanup()
        await self._stack.aclose()
        await self.ratelimit.kill()

    # -- the faults ------------------------------------------------------------------------

    async def agent_killed(self) -> str:
        host = self.hosts[0]
        await host.kill()
        await asyncio.sleep(self.settle)  # the sidecars serve without their agent meanwhile
        await host.start()
        began = time.monotonic()
        await wait_until(host.running, timeout=90, what=f"agent {host.name} adopting its Envoys")
        took = time.monotonic() - began
        return (
            f"SIGKILLed agent {host.name}; the next adopted its Envoys {took:.1f} s after its start"
        )

    async def limits_enforced(self, gateway_url: str) -> bool:
        self.probes += PROBE_LIMIT + 1
        return await limits_enforced(self.client, f"{gateway_url}limited")

    async def ratelimit_restarted(self, gateway_url: str, planes: Planes) -> str:
        await wait_until(
            lambda: self.limits_enforced(gateway_url), timeout=60, what="limits enforced"
        )
        await self.ratelimit.kill()
        await asyncio.sleep(self.settle)  # every request asks the dead service meanwhile
        await self.ratelimit.start(planes)
        began = time.monotonic()
        await wait_until(
            lambda: self.limits_enforced(gateway_url), timeout=60, what="limits enforced again"
        )
        took = time.monotonic() - began
        return f"SIGKILLed ratelimit serve; limits enforced again {took:.1f} s after its start"

    async def certificates_renewed(self, ttl_s: float) -> str:
        took = await self.certificates.all_renewed(timeout=ttl_s + 30)
        renewals = self.certificates.renewals()
        return (
            f"all {len(self.certificates.seen)} identities renewed during the run "
            f"({renewals} renewals so far; waited {took:.1f} s)"
        )

    async def backend_killed(self) -> str:
        gone = self.apps["shop-1"]
        await gone.close()
        await asyncio.sleep(self.settle)
        return f"stopped {gone.name}'s app for good (its sidecar stays)"
