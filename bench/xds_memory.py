"""Where the control plane's memory goes at scale: the mesh of ``bench/xds_scale.py``
(N services x 3 workloads, 990 sidecars with 20 Zipf-distributed dependencies, 12
gateways routing to every service) translated in-process, stage by stage, with the
process's RSS after each.

No gRPC, no streams and no store: this is the model, the translation caches and the
snapshots alone (``bench/xds_scale.py`` measures the whole control plane). The figures
are memory, not time, so the machine's speed does not move them; each stage is shown
against the RSS after imports (the baseline of the same run).

    .venv/bin/python bench/xds_memory.py --services 10000
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from envoy.config.route.v3 import route_pb2
from xds_scale_mesh import build_mesh

from gossamer.controlplane.snapshots import proxy_snapshot
from gossamer.model import ModelSnapshot
from gossamer.translate.proxy import Translator
from gossamer.types import ProxyIdentity
from gossamer.xds.serializer import Serializer
from gossamer.xds.snapshot import Snapshot

GATEWAYS = 12  # 10 simulated + 2 real in bench/xds_scale.py


def rss_mb() -> float:
    """This process's resident set now (``/proc/self/status``), in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--sidecars", type=int, default=990)
    p.add_argument("--deps", type=int, default=20)
    args = p.parse_args()
    if not 20 <= args.services <= 20_000 or not 0 <= args.sidecars <= 3 * args.services:
        p.error("--services: 20..20000; --sidecars: 0..3 x --services")

    gc.collect()
    base = last = rss_mb()
    print(f"baseline: RSS after imports {base:.0f} MB")

    def stage(what: str) -> None:
        nonlocal last
        gc.collect()
        now = rss_mb()
        print(f"{what:<44} RSS {now:7.0f} MB  +{now - last:6.0f} MB  ({now / base:.1f}x baseline)")
        last = now

    mesh = build_mesh(args.services, args.sidecars, GATEWAYS, args.deps, {})
    resources = mesh.resources()
    stage(f"{len(resources)} resources parsed (pydantic)")
    model = ModelSnapshot(0, {}, {}).with_changes(resources)
    del resources
    stage("model snapshot (indexes)")
    translator, serializer = Translator(), Serializer()
    proxies = [ProxyIdentity("gateway", "default", g) for g in mesh.gateways] + [
        x for x in mesh.proxies() if x.kind == "sidecar"
    ]
    gateways = [x for x in proxies if x.kind == "gateway"]
    sidecars = [x for x in proxies if x.kind == "sidecar"]
    held: dict[str, Snapshot] = {}
    groups = (
        ("gateway 1 (the pieces gateways share built)", gateways[:1]),
        (f"gateways 2-{len(gateways)}", gateways[1:]),
        (f"{len(sidecars)} sidecars", sidecars),
    )
    for what, group in groups:
        for proxy in group:
            held[proxy.node_id] = proxy_snapshot(translator.proxy(model, proxy), serializer)
        stage(what)
    every = [v for s in held.values() for t in s.resources.values() for v in t.values()]
    unique = {id(v): len(v.wire) for v in every}
    print(
        f"held: {len(every)} resources in {len(held)} snapshots, {len(unique)} distinct "
        f"encodings of {sum(unique.values()) / 2**20:.0f} MB "
        f"({sum(len(v.wire) for v in every) / 2**20:.0f} MB if not shared); "
        f"{len(translator.memo)} memo entries"
    )
    table = next(iter(translator.proxy(model, gateways[0]).routes.values()))
    before = rss_mb()
    copies = []
    for _ in range(10):
        copy = route_pb2.RouteConfiguration()
        copy.CopyFrom(table)
        copies.append(copy)
    per_copy = (rss_mb() - before) / 10
    print(
        f"one gateway route table ({len(table.virtual_hosts)} virtual hosts): "
        f"{per_copy:.1f} MB as a message, {len(table.SerializeToString()) / 2**20:.1f} MB encoded"
    )
    print(f"MEMORY services={args.services} total_mb={last:.0f} baseline_mb={base:.0f}")


if __name__ == "__main__":
    main()
