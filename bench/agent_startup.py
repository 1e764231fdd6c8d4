"""Agent start to serving: from ``gossamer agent run`` to the first 2xx through the mesh.

Run: ``.venv/bin/python bench/agent_startup.py [--repeats 5]``

Set-up (all on loopback, the control plane in this process): service ``b`` whose app (an
in-process HTTP backend) runs on host 127.0.0.4; a client workload on 127.0.0.2 whose sidecar
(a real Envoy fed by the control plane) has ``b`` as a dependency at a local address. The
agent for 127.0.0.4 joins once. Each repeat starts ``gossamer agent run`` as a process and
polls ``GET`` through the client's sidecar every 20 ms until ``b``'s app answers 200; then
SIGTERM drains the agent (its Envoy stops, ``b`` leaves the endpoints) and the next repeat
waits until the client's sidecar no longer reaches ``b`` before it starts. Also reported:
when the agent's ``status.json`` first says registered with its Envoy running.

Baseline in the same run: a bare Envoy with a static config (one listener, one static
cluster to the same app) from process start to its first 200, same number of repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml
from _common import percentile
from dataplane import static_envoy

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import ProxyIdentity

GOSSAMER = str(Path(sys.executable).parent / "gossamer")
CLIENT, SERVER = "127.0.0.2", "127.0.0.4"
POLL = 0.02
#: give up on one repeat after this long (the target is 10 s)
LIMIT = 120.0


async def _status(client: httpx.AsyncClient, url: str) -> int:
    try:
        r = await client.get(url)
    except httpx.TransportError:
        return 0
    return r.status_code


async def _gone(client: httpx.AsyncClient, url: str) -> bool:
    return await _status(client, url) != 200


async def _first_ok(client: httpx.AsyncClient, url: str, started: float) -> float:
    while await _status(client, url) != 200:
        if time.monotonic() - started > LIMIT:
            raise RuntimeError(f"{url} did not answer 200 within {LIMIT:g} s")
        await asyncio.sleep(POLL)
    return time.monotonic() - started


async def _registered(state_dir: Path, pid: int, started: float) -> float:
    path = state_dir / "status.json"
    while time.monotonic() - started < LIMIT:
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError):
            s = {}
        envoys = [w["envoy"]["state"] for w in s.get("workloads", {}).values()]
        if s.get("pid") == pid and s.get("registered") and envoys and "running" in envoys:
            return time.monotonic() - started
        await asyncio.sleep(POLL)
    raise RuntimeError(f"the agent did not register within {LIMIT:g} s")


async def _cli(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0:
        raise RuntimeError(f"gossamer {' '.join(args)} exited {proc.returncode}: {out.decode()}")
    return out.decode()


async def agent_runs(repeats: int, tmp: Path) -> list[tuple[float, float]]:
    """(seconds to registered, seconds to first 200 via the client's sidecar) per repeat."""
    local = free_port(CLIENT)
    samples: list[tuple[float, float]] = []
    async with (
        HttpBackend("b-1", host=SERVER) as backend,
        running_control_plane(tmp / "cp") as app,
        httpx.AsyncClient(timeout=5, trust_env=False) as client,
    ):
        deps = [{"service": "b", "localAddress": CLIENT, "localPort": local}]
        await apply_manifests(
            app,
            [
                service("client"),
                service("b", free_port()),
                workload("client-1", "client", CLIENT, free_port(CLIENT), 1, dependencies=deps),
            ],
            wait=False,
        )
        state = tmp / "agent"
        token = json.loads(
            await _cli("token", "create", "--server", app.api_url, "-o", "json", "--any-service")
        )
        await _cli(
            "agent", "join", "--server", app.api_url, "--token", str(token["token"]),
            "--state-dir", str(state), "--host", "host-b",
            "--xds", f"{app.xds_addr[0]}:{app.xds_addr[1]}",
        )  # fmt: skip
        config = tmp / "workloads.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "host": "host-b",
                    "address": SERVER,
                    "drainSeconds": 1,
                    "workloads": [
                        {"name": "b-1", "service": "b", "appAddress": SERVER,
                         "appPort": backend.address[1]},
                    ],
                }
            )
        )  # fmt: skip
        url = f"http://{CLIENT}:{local}/hello"
        async with mesh_envoy(app, ProxyIdentity("sidecar", "default", "client-1")):
            for i in range(repeats):
                await wait_until(  # the previous run's b is gone from the client's sidecar
                    lambda: _gone(client, url), timeout=60, what="b leaving the endpoints"
                )
                log = (tmp / f"agent-{i}.log").open("wb")
                started = time.monotonic()
                proc = await asyncio.create_subprocess_exec(
                    GOSSAMER, "agent", "run", "--state-dir", str(state), "-f", str(config),
                    stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                    start_new_session=True,
                )  # fmt: skip
                try:
                    registered, serving = await asyncio.gather(
                        _registered(state, proc.pid, started), _first_ok(client, url, started)
                    )
                    samples.append((registered, serving))
                    print(
                        f"  run {i + 1}: registered {registered:.2f} s, serving {serving:.2f} s",
                        flush=True,
                    )
                finally:
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(proc.wait(), 60)
                    except TimeoutError:
                        os.killpg(proc.pid, signal.SIGKILL)
                        await proc.wait()
                    log.close()
    return samples


async def baseline_runs(repeats: int) -> list[float]:
    """Seconds from starting a bare static-config Envoy to its first 200."""
    samples: list[float] = []
    async with (
        HttpBackend("b-1", host=SERVER) as backend,
        httpx.AsyncClient(timeout=5, trust_env=False) as client,
    ):
        for _ in range(repeats):
            listen = (CLIENT, free_port(CLIENT))
            envoy = static_envoy("bare", listen, backend.address)
            started = time.monotonic()
            await envoy.start()
            try:
                samples.append(await _first_ok(client, f"http://{listen[0]}:{listen[1]}/", started))
            finally:
                await envoy.terminate()
    return samples


def _line(name: str, values: list[float]) -> str:
    return f"{name:<44} p50 {percentile(values, 50):6.2f} s   max {max(values):6.2f} s"


async def run(repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gossamer-agent-bench-") as tmp:
        print(f"agent start -> serving, {repeats} repeats:", flush=True)
        agent = await agent_runs(repeats, Path(tmp))
    base = await baseline_runs(repeats)
    serving = [s for _, s in agent]
    print()
    print(_line("agent run -> status registered + Envoy up", [r for r, _ in agent]))
    print(_line("agent run -> first 200 via client sidecar", serving))
    print(_line("baseline: bare static Envoy -> first 200", base))
    ratio = percentile(serving, 50) / percentile(base, 50)
    print(f"ratio (p50 agent / p50 baseline): {ratio:.1f}x   target: agent p50 and max <= 10 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=5, help="1..20 (default 5)")
    args = parser.parse_args()
    asyncio.run(run(max(1, min(args.repeats, 20))))


if __name__ == "__main__":
    main()
