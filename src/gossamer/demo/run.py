"""``gossamer demo``: a small shop on one machine, every part real.

web -> catalog, web -> reviews v1/v2 (80/20) , web -> ratings (gRPC); each workload on its own
loopback "host" behind its own Envoy sidecar; an Envoy ingress gateway in front of web; a
traffic generator. No fixed port: everything binds free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from gossamer.api.ui import read_only_token, ui_url
from gossamer.cancel import raise_if_cancelling
from gossamer.demo.view import (
    VERSIONS,
    EdgeRates,
    Tally,
    plain_table,
    rich_table,
    rich_tree,
    split_text,
    summary,
    tree_lines,
)
from gossamer.demo.web import WebApp
from gossamer.model import parse_manifest
from gossamer.registry.operators import ADMIN_TOKEN_FILE
from gossamer.server.app import ControlPlaneApp, create_app
from gossamer.server.settings import Settings
from gossamer.server.telemetry_child import TelemetrySettings
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
REFRESH_S = 3.0  # seconds between two refreshes of the figures


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
    # figures that move by the second for the live view: one access-log entry per request
    # (the default, Envoy's stats, arrives every 10 s; docs/telemetry.md, "Collection");
    # and every request traced (off by default), so the UI has traces to open
    out.append(
        {
            "apiVersion": API_VERSION,
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"telemetry": {"requests": "logs"}, "tracing": {"sampling": 100}},
        }
    )
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


def _service(workload: str) -> str:
    """``web-1`` -> ``web``: the node names its service, as an agent's sidecars do (the
    telemetry's client view takes the caller from it)."""
    return workload.rsplit("-", 1)[0]


async def _read_only_token(app: ControlPlaneApp) -> str:
    """A new read-only operator token: the web UI's (in its link's fragment, docs/ui.md),
    the CLI's and the demo's own reads of the topology."""
    assert app.operators is not None
    admin = (app.settings.data_dir / ADMIN_TOKEN_FILE).read_text(encoding="utf-8")
    return await read_only_token(app.operators, admin.strip(), "demo-ui")


async def _topology(client: httpx.AsyncClient) -> dict[str, Any]:
    """The client view of every call since the demo began (an empty one while the telemetry
    service is still starting: the API answers 503 until it does)."""
    try:
        r = await client.get("/v1/topology", params={"since": "1h", "view": "client"})
    except httpx.TransportError:
        raise_if_cancelling()
        return {}
    return r.json() if r.status_code == 200 else {}


def _proxies(app: ControlPlaneApp) -> Table:
    proxies = Table(title="proxies", title_justify="left", box=None)
    for col in ("PROXY", "KIND", "STATE", "CLUSTERS", "LISTENERS"):
        proxies.add_column(col)
    for p in app.plane.proxy_status():
        sizes = {t.type: t.resources for t in p.types}
        proxies.add_row(
            p.name, p.kind, p.state, str(sizes.get("clusters", 0)), str(sizes.get("listeners", 0))
        )
    return proxies


async def _traffic(url: str, tally: Tally, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            try:
                r = await client.get(url)
                if r.status_code == 200:
                    tally.ok += 1
                    tally.reviews[r.json()["reviews"]] += 1
                else:
                    tally.failed[f"HTTP {r.status_code}"] += 1
            except httpx.TransportError as e:
                raise_if_cancelling()
                tally.failed[type(e).__name__] += 1
                await asyncio.sleep(0.1)


class _Screen:
    """Where the demo's figures go: a live redraw on a terminal, plain lines otherwise
    (a pipe or a file gets each refresh once, no cursor movement, no box drawing)."""

    def __init__(self, console: Console, app: ControlPlaneApp) -> None:
        self.console, self.app = console, app
        self.live: Live | None = None
        self.tree: list[str] = []

    def say(self, line: str) -> None:
        self.console.print(line, soft_wrap=True, highlight=False, markup=False)

    def show(self, topology: dict[str, Any], rows: list[list[str]], title: str, split: str) -> None:
        notes = {"default/reviews": f"[{split}]"} if split else {}
        tree = tree_lines(topology, notes)
        if self.console.is_terminal:
            group = Group(
                rich_tree(tree, "topology"), "", rich_table(rows, title), "",
                f"reviews split (route 80/20): {split}", "", _proxies(self.app),
            )  # fmt: skip
            if self.live is None:
                self.live = Live(group, console=self.console, auto_refresh=False)
                self.live.start()
            self.live.update(group, refresh=True)
            return
        shape = [line.split("  [")[0] for line in tree]
        if tree and shape != self.tree:  # the tree when it first shows and when it changes
            self.tree = shape
            self.say("")
            self.say("topology (client view: who calls whom)")
            for line in tree:
                self.say(f"  {line}")
        self.say("")
        self.say(title)
        for line in plain_table(rows):
            self.say(f"  {line}")
        self.say(f"  reviews split (route 80/20): {split}")

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


async def _pause(interrupt: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``; True at once if ``interrupt`` is set (Ctrl-C)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await interrupt.wait()
    return interrupt.is_set()


async def _watch(
    app: ControlPlaneApp, token: str, tally: Tally, screen: _Screen, duration: float | None
) -> None:
    """Refresh every ``REFRESH_S`` until ``duration`` has passed; then the whole run's."""
    assert tally.started is not None
    headers = {"Authorization": f"Bearer {token}"}
    rates = EdgeRates()
    async with httpx.AsyncClient(base_url=app.api_url, headers=headers, timeout=5) as client:
        while True:
            left = None if duration is None else duration - (time.monotonic() - tally.started)
            if left is not None and left < 1.5 * REFRESH_S:  # the whole run's comes next
                await _pause(tally.interrupt, max(left, 0.0))
                break
            if await _pause(tally.interrupt, REFRESH_S):
                break  # Ctrl-C: the whole run's figures, then stop
            topology = await _topology(client)
            elapsed = time.monotonic() - tally.started
            rows = rates.rows(topology, time.monotonic(), tally.started)
            title = f"edges at {elapsed:.0f} s (rps over the last {REFRESH_S:.0f} s; errors, "
            title += "p50/p99 since the start)"
            screen.show(topology, rows, title, split_text(tally.reviews, VERSIONS))
        topology = await _topology(client)
        whole = EdgeRates().rows(topology, time.monotonic(), tally.started)
        title = f"edges over the whole run ({time.monotonic() - tally.started:.0f} s)"
        screen.show(topology, whole, title, split_text(tally.reviews, VERSIONS))


async def demo(duration: float | None, console: Console, tally: Tally) -> bool:
    """Run the demo; with ``duration`` stop after that many seconds. True if traffic worked."""
    with tempfile.TemporaryDirectory(prefix="gossamer-demo-") as tmp:
        settings = Settings(
            Path(tmp),
            api_addr=("127.0.0.1", 0),
            xds_addr=("127.0.0.1", 0),
            # its Envoys run in-process without an agent, so without a certificate: they
            # take the plaintext port (`gossamer control-plane` defaults to required)
            xds_tls="optional",
            # plaintext on loopback, so a browser opens the web UI without a warning about
            # the mesh CA it does not know (`gossamer control-plane` serves HTTPS)
            api_tls=False,
            telemetry=TelemetrySettings("auto"),  # the web UI's map
        )
        async with contextlib.AsyncExitStack() as stack:
            app = await stack.enter_async_context(create_app(settings))
            token = await _read_only_token(app)
            say = _Screen(console, app).say
            say(f"control plane: API {app.api_url}, xDS {app.xds_addr[1]}")
            say(f"web UI: {ui_url(app.api_url, token)}")
            say(f"CLI: export GOSSAMER_SERVER={app.api_url}")
            say(f"     export GOSSAMER_TOKEN={token}")
            say("     (read-only: gossamer top, gossamer proxy-status, gossamer get services ...)")
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
                    mesh_envoy(
                        app, ProxyIdentity("sidecar", "default", name, service=_service(name))
                    )
                )
            await stack.enter_async_context(
                mesh_envoy(app, ProxyIdentity("gateway", "default", "edge"))
            )
            url = f"http://{gateway[0]}:{gateway[1]}/"
            # From here Ctrl-C stops the run rather than cancelling it: a cancellation that
            # lands inside an httpx request can be turned into a timeout there and lost, and
            # the demo then ran on (seen in the UI test). Before, it cancels the start-up.
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, tally.interrupt.set)
            say(f"ingress: {url}   (Ctrl-C stops everything)")
            screen = _Screen(console, app)
            stop = asyncio.Event()
            tally.started = time.monotonic()
            try:
                async with asyncio.TaskGroup() as tg:
                    for _ in range(CONCURRENCY):
                        tg.create_task(_traffic(url, tally, stop))
                    try:
                        await _watch(app, token, tally, screen, duration)
                    finally:
                        stop.set()  # (before the group waits for the traffic tasks)
            finally:
                loop.remove_signal_handler(signal.SIGINT)
                screen.close()
                tally.seconds = time.monotonic() - tally.started
            return tally.ok > 0 and tally.ok >= 0.95 * tally.total


def main(duration: float | None) -> int:
    console = Console()
    tally = Tally()
    try:
        ok = asyncio.run(demo(duration, console, tally))
    except KeyboardInterrupt:
        ok = True
        tally.interrupt.set()
    if tally.interrupt.is_set():
        console.print("stopped (Ctrl-C)", highlight=False)
        ok = True
    console.print("", soft_wrap=True)
    console.print(summary(tally), soft_wrap=True, highlight=False, markup=False)
    return 0 if ok else 1
