"""``gossamer demo``: a small shop on one machine, every part real.

web -> catalog, web -> reviews v1/v2 (80/20) , web -> ratings (gRPC); each workload on its own
loopback "host" behind its own Envoy sidecar; an Envoy ingress gateway in front of web; a
traffic generator. No fixed port: everything binds free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from gossamer.demo.web import WebApp
from gossamer.model import parse_manifest
from gossamer.server.app import ControlPlaneApp, Settings, create_app
from gossamer.testing.backends import GrpcBackend, HttpBackend
from gossamer.testing.controlplane import mesh_envoy
from gossamer.testing.mesh import route, service, split, workload
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION, ProxyIdentity

HOSTS = {
    "web-1": "127.0.0.2",
    "catalog-1": "127.0.0.3",
    "reviews-1": "127.0.0.4",
    "reviews-2": "127.0.0.5",
    "ratings-1": "127.0.0.6",
}
CONCURRENCY = 4


def _manifests(
    apps: dict[str, tuple[str, int]], ports: dict[str, int], gateway: tuple[str, int]
) -> list[dict[str, Any]]:
    web = HOSTS["web-1"]
    deps = [
        {"service": s, "localAddress": web, "localPort": ports[s]}
        for s in ("catalog", "reviews", "ratings")
    ]
    out: list[dict[str, Any]] = [
        service("web", free_port()),
        service("catalog", ports["catalog"]),
        service("reviews", ports["reviews"]),
        service("ratings", ports["ratings"], "grpc"),
    ]
    for name, (svc, version) in {
        "web-1": ("web", "v1"),
        "catalog-1": ("catalog", "v1"),
        "reviews-1": ("reviews", "v1"),
        "reviews-2": ("reviews", "v2"),
        "ratings-1": ("ratings", "v1"),
    }.items():
        host = HOSTS[name]
        out.append(
            workload(
                name,
                svc,
                host,
                free_port(host),
                apps[name][1],
                host=f"host-{name}",
                labels={"version": version},
                dependencies=deps if name == "web-1" else None,
            )
        )
    out.append(route("reviews", "reviews", split("reviews", {"v1": 80, "v2": 20})))
    out.append(
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {"address": gateway[0], "port": gateway[1]},
        }
    )
    out.append(
        {
            "apiVersion": API_VERSION,
            "kind": "Route",
            "metadata": {"name": "edge"},
            "spec": {"gateways": ["edge"], "rules": [{"destinations": [{"service": "web"}]}]},
        }
    )
    return out


def _table(app: ControlPlaneApp, counts: Counter[str], url: str, started: float) -> Group:
    proxies = Table(title="proxies", expand=False)
    for col in ("proxy", "kind", "state", "clusters", "listeners"):
        proxies.add_column(col)
    for p in app.plane.proxy_status():
        sizes = {t.type: t.resources for t in p.types}
        proxies.add_row(
            p.name, p.kind, p.state, str(sizes.get("clusters", 0)), str(sizes.get("listeners", 0))
        )
    traffic = Table(title=f"traffic through {url}  ({time.monotonic() - started:.0f} s)")
    for col in ("answered by", "requests"):
        traffic.add_column(col)
    for key, n in sorted(counts.items()):
        traffic.add_row(key, str(n))
    return Group(proxies, traffic)


async def _traffic(url: str, counts: Counter[str], stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            try:
                r = await client.get(url)
                if r.status_code == 200:
                    body = r.json()
                    counts["ok"] += 1
                    counts[f"reviews: {body['reviews']}"] += 1
                else:
                    counts[f"HTTP {r.status_code}"] += 1
            except httpx.TransportError as e:
                counts[f"error: {type(e).__name__}"] += 1
                await asyncio.sleep(0.1)


async def demo(duration: float | None, console: Console) -> bool:
    """Run the demo; with ``duration`` stop after that many seconds. True if traffic worked."""
    with tempfile.TemporaryDirectory(prefix="gossamer-demo-") as tmp:
        settings = Settings(
            Path(tmp),
            api_addr=("127.0.0.1", 0),
            xds_addr=("127.0.0.1", free_port()),
            xds_tls_addr=("127.0.0.1", 0),  # the demo's sidecars use plaintext xDS
        )
        async with contextlib.AsyncExitStack() as stack:
            app = await stack.enter_async_context(create_app(settings))
            console.print(f"control plane: API {app.api_url}, xDS {app.xds_addr[1]}")
            apps: dict[str, tuple[str, int]] = {}
            for name in ("catalog-1", "reviews-1", "reviews-2"):
                b = await stack.enter_async_context(HttpBackend(name, host=HOSTS[name]))
                apps[name] = b.address
            g = await stack.enter_async_context(GrpcBackend("ratings-1", host=HOSTS["ratings-1"]))
            apps["ratings-1"] = g.address
            web_host = HOSTS["web-1"]
            ports = {s: free_port(web_host) for s in ("catalog", "reviews", "ratings")}
            web = await stack.enter_async_context(
                WebApp(
                    web_host,
                    f"http://{web_host}:{ports['catalog']}",
                    f"http://{web_host}:{ports['reviews']}",
                    (web_host, ports["ratings"]),
                )
            )
            apps["web-1"] = web.address
            gateway = ("127.0.0.1", free_port())
            resources = [parse_manifest(m) for m in _manifests(apps, ports, gateway)]
            await app.plane.apply(resources)
            for name in HOSTS:
                await stack.enter_async_context(
                    mesh_envoy(app, ProxyIdentity("sidecar", "default", name))
                )
            await stack.enter_async_context(
                mesh_envoy(app, ProxyIdentity("gateway", "default", "edge"))
            )
            url = f"http://{gateway[0]}:{gateway[1]}/"
            console.print(f"ingress: {url}   (Ctrl-C stops everything)")
            counts: Counter[str] = Counter()
            stop = asyncio.Event()
            started = time.monotonic()
            async with asyncio.TaskGroup() as tg:
                for _ in range(CONCURRENCY):
                    tg.create_task(_traffic(url, counts, stop))
                try:
                    with Live(
                        _table(app, counts, url, started), console=console, refresh_per_second=2
                    ) as live:
                        while duration is None or time.monotonic() - started < duration:
                            await asyncio.sleep(0.5)
                            live.update(_table(app, counts, url, started))
                finally:
                    stop.set()
            total = sum(v for k, v in counts.items() if not k.startswith("reviews"))
            ok = counts["ok"]
            console.print(f"{ok} of {total} requests succeeded")
            return ok > 0 and ok >= 0.95 * total


def main(duration: float | None) -> int:
    console = Console()
    try:
        return 0 if asyncio.run(demo(duration, console)) else 1
    except KeyboardInterrupt:
        console.print("stopped")
        return 0
