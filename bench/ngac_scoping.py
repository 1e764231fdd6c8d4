"""What "proxies only see what they may call" saves (issue 11, ``translate.scoping``).

Run: ``.venv/bin/python bench/ngac_scoping.py [--services 1000] [--granted 10] [--no-envoy]``

A mesh of ``--services`` HTTP services (one workload each) and one caller whose workload
depends on all of them; the graph grants the caller GET on ``--granted`` of them. The
caller's sidecar is translated in-process three ways: mode ``audit`` (nothing scoped: what
every mesh without scoping sends) and ``enforce`` (scoped), and the bytes of each resource
type are summed as serialised for xDS. Then, unless ``--no-envoy``, one real Envoy
(``--concurrency 1``) is started on each variant's outbound listeners, clusters, endpoints
and routes as a static bootstrap (the inbound side is the same in both and left out) and its
RSS is read once it is ready (``/proc/PID/status`` VmRSS; ~51 MB of it is the binary).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from _common import rss_mb

from gossamer.authz.engine import build_state
from gossamer.authz.service_access import AccessState, ServiceAccessCompiler
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.model import ModelSnapshot, parse_yaml
from gossamer.model.access_policy import AccessPolicy
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.proxy import ProxyResources, Translator
from gossamer.types import ProxyIdentity, spiffe_id

TD = "bench.local"
CALLER = ProxyIdentity("sidecar", "default", "caller-1")


def mesh(n: int, mode: str) -> ModelSnapshot:
    docs = [
        "apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {name: default}\n"
        f"spec: {{trustDomain: {TD}, authorization: {{mode: {mode}}}}}",
        "apiVersion: gossamer.dev/v1\nkind: Service\nmetadata: {name: caller}\n"
        "spec: {ports: [{name: http, port: 8080}]}",
    ]
    deps = ", ".join(f"{{service: s{i}}}" for i in range(n))
    docs.append(
        "apiVersion: gossamer.dev/v1\nkind: Workload\nmetadata: {name: caller-1}\n"
        "spec: {service: caller, address: 127.0.0.2, "
        f"ports: [{{port: 15001, appPort: 18080}}], dependencies: [{deps}]}}"
    )
    for i in range(n):
        docs.append(
            f"apiVersion: gossamer.dev/v1\nkind: Service\nmetadata: {{name: s{i}}}\n"
            "spec: {ports: [{name: http, port: 9080}]}"
        )
        docs.append(
            f"apiVersion: gossamer.dev/v1\nkind: Workload\nmetadata: {{name: s{i}-1}}\n"
            f"spec: {{service: s{i}, address: 127.1.{i // 250}.{i % 250 + 1}, "
            "ports: [{port: 15001, appPort: 19080}]}"
        )
    return ModelSnapshot().with_changes(parse_yaml("\n---\n".join(docs), "bench.yaml"))


def access(n: int, granted: int) -> AccessState:
    caller = spiffe_id(TD, "default", "caller")
    objects = ", ".join(f'"svc:default/s{i}": [{"granted" if i < granted else "rest"}]'
                        for i in range(n))  # fmt: skip
    text = f"""
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {{name: bench}}
spec:
  policyClasses: [mesh]
  userAttributes: {{callers: [mesh]}}
  objectAttributes: {{granted: [mesh], rest: [mesh], {objects}}}
  users: {{"{caller}": [callers]}}
  associations: [{{userAttribute: callers, target: granted, rights: [GET]}}]
"""
    policies = [r for r in parse_yaml(text, "policy.yaml") if isinstance(r, AccessPolicy)]
    compiler = ServiceAccessCompiler(build_state(policies, []).decider)
    return AccessState(compiler.compile_all([("default", f"s{i}") for i in range(n)]))


def sizes(res: ProxyResources) -> dict[str, int]:
    def total(items: Any) -> int:
        return sum(len(m.SerializeToString(deterministic=True)) for m in items.values())

    return {
        "clusters": total(res.clusters),
        "endpoints": total(res.endpoints),
        "listeners": total(res.listeners),
        "routes": total(res.routes),
        "ecds": total(res.extension_configs),
    }


async def envoy_rss(res: ProxyResources) -> float:
    outbound = [lst for name, lst in res.listeners.items() if name.startswith("outbound|")]
    routes = [t for name, t in res.routes.items() if name.startswith("outbound|")]
    clusters = [c for name, c in res.clusters.items() if name.startswith("outbound|")]
    boot = static_bootstrap(
        listeners=outbound,
        clusters=clusters,
        endpoints=[res.endpoints[c.name] for c in clusters],
        routes=routes,
        extension_configs=res.extension_configs.values(),
    )
    async with EnvoyProcess(boot, concurrency=1, log_level="warning", name="scoping") as envoy:
        process = envoy._process  # the bench reads its RSS
        assert process is not None
        return rss_mb(process.pid)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--granted", type=int, default=10)
    parser.add_argument("--no-envoy", action="store_true")
    args = parser.parse_args()
    lists = access(args.services, args.granted)
    rows = {}
    for mode in ("audit", "enforce"):
        snap = mesh(args.services, mode)
        start = time.perf_counter()
        res = Translator().proxy(snap, CALLER, access=lists)
        took = time.perf_counter() - start
        rows[mode] = (res, sizes(res), took)
    print(f"{args.services} services, the caller granted {args.granted}\n")
    print("| resources | unscoped (audit) | scoped (enforce) |")
    print("|---|---:|---:|")
    for kind in ("clusters", "endpoints", "listeners", "routes", "ecds"):
        print(f"| {kind} bytes | {rows['audit'][1][kind]:,} | {rows['enforce'][1][kind]:,} |")
    for mode in rows:
        rows[mode][1]["total"] = sum(rows[mode][1].values())
    print(f"| total bytes | {rows['audit'][1]['total']:,} | {rows['enforce'][1]['total']:,} |")
    counts = {m: len(r[0].clusters) for m, r in rows.items()}
    print(f"| clusters | {counts['audit']:,} | {counts['enforce']:,} |")
    print(f"| translate (s) | {rows['audit'][2]:.3f} | {rows['enforce'][2]:.3f} |")
    if not args.no_envoy:
        rss = {m: await envoy_rss(r[0]) for m, r in rows.items()}
        print(f"| Envoy RSS (MB) | {rss['audit']:.1f} | {rss['enforce']:.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
