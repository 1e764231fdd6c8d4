"""What enforcement costs a request: CPU per request of a sidecar chain with NGAC
enforcement on against the same chain with it off, in one run.

Run: ``.venv/bin/python bench/ngac_chain.py [--duration 3] [--requests 50000] [--rounds 6]
[--identities 1000]``

Chains, all up at once, measured interleaved (order flipped each round) at 1 and 16
connections; every Envoy runs with ``--concurrency 1``; all on loopback; the Mesh is
``strict`` (mTLS between the sidecars, certificates over SDS from each host's agent):
  * direct: the load generator calls the backend itself (the baseline for added latency);
  * off: caller sidecar -> callee sidecar -> backend for a service whose
    ``authorization.mode`` is ``off`` (the inbound RBAC filter is there, with no policy);
  * enforce: the same for a service with ``authorization.mode: enforce``: its inbound route
    table carries the compiled access lists (``RBACPerRoute``, an exact-match map on the
    peer's URI SAN), granting the caller GET except under ``/admin`` (a prohibition), with
    ``--identities`` more service identities granted alongside it.
The Gossamer sidecars are run by two real ``gossamer agent`` processes (callers' host,
callees' host) fed by a real control plane in this process. Before measuring, the
enforcing chain must really enforce (``/admin`` answers 403 there and 200 through the off
chain), its callee's route table must name the caller and every other identity, and both
callees must have handshaken TLS; afterwards the enforcing callee's
``rbac.allowed`` must have counted every measured request. The load generator
(``_common.LOADER``) runs in its own process. CPU = utime + stime of the chain's two Envoys
over the run, divided by the requests answered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx
from _common import LoadResult, chain_args, chain_parser, exit_if_failed, http_load
from mesh_hosts import HostAgent, running_hosts
from mtls_chain import (
    Chain,
    Sample,
    backend,
    listener_handshakes,
    wait_answering,
    wait_refusing_plaintext,
    workload,
)

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.polling import wait_until
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.types import spiffe_id

TD = "bench.local"
CALLERS, CALLEES, BACKEND_HOST = "127.0.0.2", "127.0.0.3", "127.0.0.5"
CHAINS = ("direct", "off", "enforce")
CONNECTIONS = (1, 16)
#: the issue's target: enforce / off CPU per request
CPU_TARGET = 1.10

Address = tuple[str, int]


def manifests(identities: int) -> str:
    services = "".join(
        f"""---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: {name}}}
spec: {{ports: [{{name: http, port: {port}}}]{mode}}}
"""
        for name, port, mode in (
            ("off-caller", 8080, ""),
            ("off-backend", 9080, ", authorization: {mode: 'off'}"),
            ("enf-caller", 8081, ""),
            ("enf-backend", 9081, ", authorization: {mode: enforce}"),
        )
    )
    caller = spiffe_id(TD, "default", "enf-caller")
    others = "".join(
        f'\n    "{spiffe_id(TD, "default", f"id{i}")}": [others]' for i in range(identities)
    )
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: {TD}, mtls: {{mode: strict}}}}
{services}---
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {{name: bench}}
spec:
  policyClasses: [bench]
  userAttributes: {{callers: [bench], others: [bench]}}
  objectAttributes:
    apis: [bench]
    "svc:default/enf-backend": [apis]
    "svc:default/enf-backend:/admin": ["svc:default/enf-backend"]
  users:
    "{caller}": [callers]{others}
  associations:
  - {{userAttribute: callers, target: apis, rights: [GET]}}
  - {{userAttribute: others, target: apis, rights: [GET, POST]}}
  prohibitions:
  - {{name: no-admin, subject: callers, rights: [GET], include: ["svc:default/enf-backend:/admin"]}}
"""


async def status(address: Address, path: str) -> int:
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        return (await client.get(f"http://{address[0]}:{address[1]}{path}")).status_code


async def check_enforcing(local: dict[str, Address]) -> None:
    """The enforcing chain denies what the graph does not grant; the off chain does not."""

    async def denied() -> bool:
        return await status(local["enforce"], "/admin/x") == 403

    await wait_until(denied, timeout=60, what="the enforcing chain answers 403 for /admin")
    got = {
        (name, path): await status(local[name], path)
        for name in ("off", "enforce")
        for path in ("/bench", "/admin/x")
    }
    want = {
        ("off", "/bench"): 200,
        ("off", "/admin/x"): 200,
        ("enforce", "/bench"): 200,
        ("enforce", "/admin/x"): 403,
    }
    if got != want:
        raise RuntimeError(f"the chains do not answer as their modes say: {got}")
    print(f"enforce denies /admin (403), allows /bench; off allows both: {got}", flush=True)


async def check_compiled(admin: EnvoyAdmin, identities: int) -> None:
    """The enforcing callee's route table holds the caller and every other identity."""
    routes = json.dumps(await admin.config_dump(resource="dynamic_route_configs"))
    named = set(re.findall(rf"spiffe://{re.escape(TD)}/ns/default/sa/[\w-]+", routes))
    if len(named) < identities + 1:
        raise RuntimeError(f"the enforcing callee's RBAC names {len(named)} callers")
    print(f"the enforcing callee's route table names {len(named)} callers", flush=True)


async def rbac_allowed(admin: EnvoyAdmin) -> int:
    stats = await admin.stats(r"^http\.inbound.*\.rbac\.allowed$")
    return sum(stats.values())


async def measure(
    chains: dict[str, Chain], args: argparse.Namespace, enforcing: EnvoyAdmin
) -> list[Sample]:
    for c in chains.values():  # warm-up: connections, pools, TLS sessions
        await http_load(c.address, 16, max_requests=500, max_seconds=2)
    for name in ("off", "enforce"):
        count = chains[name].handshakes
        if count is None or await count() == 0:
            raise RuntimeError(f"the {name} chain's callee Envoy made no TLS handshake")
    allowed0 = await rbac_allowed(enforcing)
    samples: list[Sample] = []
    for r in range(args.rounds):
        for conns in CONNECTIONS:
            for name in list(chains) if r % 2 == 0 else list(reversed(chains)):
                c = chains[name]
                res = await http_load(
                    c.address, conns, max_requests=args.requests,
                    max_seconds=args.duration, pids=c.pids,
                )  # fmt: skip
                samples.append(Sample(name, conns, res, None))
                print(
                    f"round {r} {name:7s} c={conns:2d}: {res.requests:6d} req "
                    f"{res.rps:7.0f} rps  p50 {res.ms(50):6.3f}  p99 {res.ms(99):6.3f} ms  "
                    f"{res.cpu_us_per_request:6.1f} us CPU/req  errors {res.errors}  "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    counted = await rbac_allowed(enforcing) - allowed0
    measured = sum(s.result.requests for s in samples if s.chain == "enforce")
    print(f"enforce: the callee's RBAC allowed {counted} requests; {measured} measured")
    if counted < measured:
        raise RuntimeError("the enforcing callee's RBAC did not decide every measured request")
    return samples


async def run(args: argparse.Namespace) -> list[Sample]:
    with tempfile.TemporaryDirectory(prefix="gossamer-ngac-chain-") as name:
        tmp = Path(name)
        app_addr = (BACKEND_HOST, free_port(BACKEND_HOST))
        local = {k: (CALLERS, free_port(CALLERS)) for k in ("off", "enforce")}
        async with backend(app_addr), running_control_plane(tmp / "cp") as app:
            await apply_yaml(app, manifests(args.identities), wait=False)
            callers = HostAgent(app, "callers", CALLERS, tmp / "callers", [
                workload("oc-1", "off-caller", app_addr, ("off-backend", local["off"])),
                workload("ec-1", "enf-caller", app_addr, ("enf-backend", local["enforce"])),
            ])  # fmt: skip
            callees = HostAgent(app, "callees", CALLEES, tmp / "callees", [
                workload("ob-1", "off-backend", app_addr),
                workload("eb-1", "enf-backend", app_addr),
            ])  # fmt: skip
            async with running_hosts(callers, callees):
                for k in ("off", "enforce"):
                    await wait_answering(local[k])
                for key in ("default/ob-1", "default/eb-1"):
                    await wait_refusing_plaintext(callees.inbound(key))
                await check_enforcing(local)
                admins = {k: callees.admin(f"default/{k}-1") for k in ("ob", "eb")}
                await check_compiled(admins["eb"], args.identities)
                chains = {
                    "direct": Chain("direct", app_addr, ()),
                    "off": Chain("off", local["off"], (
                        callers.envoy_pid("default/oc-1"), callees.envoy_pid("default/ob-1")),
                        lambda: listener_handshakes(admins["ob"])),
                    "enforce": Chain("enforce", local["enforce"], (
                        callers.envoy_pid("default/ec-1"), callees.envoy_pid("default/eb-1")),
                        lambda: listener_handshakes(admins["eb"])),
                }  # fmt: skip
                try:
                    return await measure(chains, args, admins["eb"])
                finally:
                    for a in admins.values():
                        await a.aclose()
    raise AssertionError("unreachable")


def _spread(by: dict[str, list[Sample]], key: Callable[[LoadResult], float]) -> str:
    pairs = zip(by["enforce"], by["off"], strict=True)
    return " ".join(f"{key(e.result) / key(o.result):.2f}" for e, o in pairs)


def report(samples: list[Sample]) -> bool:
    """Print the table (pooled over rounds) and enforce/off; whether the target was met."""
    met = True
    print("\npooled over rounds (CPU = both Envoys of the chain; added = chain - direct)")
    print(
        f"{'conns':>5} {'chain':>7} {'rps':>7} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'added p50/p90/p99 ms':>22} {'us CPU/req':>10} {'errors':>6}"
    )
    for conns in CONNECTIONS:
        by = {c: [s for s in samples if s.chain == c and s.connections == conns] for c in CHAINS}
        rows = {c: LoadResult.pooled([s.result for s in by[c]]) for c in CHAINS}
        d = rows["direct"]
        for chain, m in rows.items():
            added = "/".join(f"{m.ms(p) - d.ms(p):+.3f}" for p in (50, 90, 99))
            cpu = "-" if chain == "direct" else f"{m.cpu_us_per_request:.1f}"
            print(
                f"{conns:5d} {chain:>7} {m.rps:7.0f} {m.ms(50):7.3f} {m.ms(90):7.3f} "
                f"{m.ms(99):7.3f} {added:>22} {cpu:>10} {m.errors:6d}"
            )
        e, o = rows["enforce"], rows["off"]
        ratio = e.cpu_us_per_request / o.cpu_us_per_request
        met = met and ratio <= CPU_TARGET
        print(
            f"      enforce/off: CPU/req {ratio:.2f}x (target <= {CPU_TARGET}x: "
            f"{'met' if ratio <= CPU_TARGET else 'MISSED'}), p50 {e.ms(50) / o.ms(50):.2f}x, "
            f"p99 {e.ms(99) / o.ms(99):.2f}x, rps {e.rps / o.rps:.2f}x"
        )
        print(
            f"      by round, enforce/off: CPU/req {_spread(by, lambda r: r.cpu_us_per_request)}"
            f";  p99 {_spread(by, lambda r: r.ms(99))}"
        )
    return met


def main(argv: list[str] | None = None) -> None:
    """Run with ``argv`` (default: the command line's); ``bench/ngac.py`` passes its own."""
    parser = chain_parser(__doc__)
    parser.add_argument(
        "--identities", type=int, default=1000, help="more identities in the access list"
    )
    args = chain_args(parser, argv)
    args.identities = max(0, min(args.identities, 20_000))
    samples = asyncio.run(run(args))
    report(samples)
    exit_if_failed(s.result.errors for s in samples)


if __name__ == "__main__":
    main()
