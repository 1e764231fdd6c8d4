"""Caller sidecars or gateways with a globally rate-limited Route to a sidecar-less
``reviews``, as static Envoys built by the translator (no control plane), and ``gossamer
ratelimit serve`` processes with their rules in a file: the data path alone, each part a
real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gossamer.envoy.process import ManagedProcess
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.model import ModelSnapshot, parse_manifest
from gossamer.polling import wait_until
from gossamer.testing.mesh import _manifest, route, service, workload
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import static_bootstrap
from gossamer.translate.global_rate_limit import RateLimitService
from gossamer.translate.proxy import Translator
from gossamer.types import API_VERSION, Manifest, ProxyIdentity, ProxyKind

REVIEWS = "127.0.0.3"
RULE_ID = "default/reviews/limited"


def limited_rule(requests: int, per: str = "1s", key: dict[str, Any] | None = None) -> dict:
    limit: dict[str, Any] = {"requests": requests, "per": per, "global": True}
    if key:
        limit["key"] = key
    return {"name": "limited", "destinations": [{"service": "reviews"}], "rateLimit": limit}


def _mesh(failure_mode: str, timeout: str) -> Manifest:
    return _manifest(
        "Mesh", "default", {"rateLimit": {"failureMode": failure_mode, "timeout": timeout}}
    )


def snapshot(
    callers: Sequence[tuple[str, str, int]],
    reviews_port: int,
    rule: dict,
    failure_mode: str,
    timeout: str = "100ms",
) -> ModelSnapshot:
    """``callers``: (name, address, local port for reviews); ``timeout``: how long Envoy
    waits for the service's answer."""
    manifests = [
        _mesh(failure_mode, timeout),
        service("web"),
        service("reviews", 9080),
        workload("reviews-1", "reviews", REVIEWS, reviews_port, reviews_port, sidecar=False),
        route("reviews", "reviews", [rule]),
    ]
    for name, address, local in callers:
        deps = [{"service": "reviews", "localAddress": address, "localPort": local}]
        manifests.append(workload(name, "web", address, free_port(address), 1, dependencies=deps))
    return ModelSnapshot().with_changes([parse_manifest(m) for m in manifests])


def gateway_snapshot(
    gateways: Sequence[tuple[str, str, int]],
    reviews_port: int,
    rule: dict,
    failure_mode: str,
    timeout: str = "100ms",
) -> ModelSnapshot:
    """``gateways``: (name, address, port), all routing one Route ``reviews`` with ``rule``
    (so the rule id is ``RULE_ID`` at each of them: one budget)."""
    manifests: list[Manifest] = [
        _mesh(failure_mode, timeout),
        service("reviews", 9080),
        workload("reviews-1", "reviews", REVIEWS, reviews_port, reviews_port, sidecar=False),
        {
            "apiVersion": API_VERSION,
            "kind": "Route",
            "metadata": {"name": "reviews"},
            "spec": {"gateways": [name for name, _, _ in gateways], "rules": [rule]},
        },
    ]
    for name, address, port in gateways:
        manifests.append(_manifest("Gateway", name, {"address": address, "port": port}))
    return ModelSnapshot().with_changes([parse_manifest(m) for m in manifests])


def caller_envoy(
    snap: ModelSnapshot, name: str, service: RateLimitService, kind: ProxyKind = "sidecar"
) -> EnvoyProcess:
    """The static Envoy of the sidecar (or gateway) ``name`` as the translator makes it."""
    ident = ProxyIdentity(kind, "default", name)
    res = Translator(service).proxy(snap, ident)
    bootstrap = static_bootstrap(
        listeners=res.listeners.values(),
        clusters=res.clusters.values(),
        endpoints=res.endpoints.values(),
        routes=res.routes.values(),
        node=ident,
        extension_configs=res.extension_configs.values(),
    )
    return EnvoyProcess(bootstrap, name=name)


def rules_file(path: Path, requests: int, unit: str, key: str = "") -> Path:
    rule = {"id": RULE_ID, "requests": requests, "unit": unit, "key": key}
    path.write_text(json.dumps({"version": "1", "rules": [rule]}))
    return path


@dataclass
class RateLimitProcess:
    process: ManagedProcess
    address: RateLimitService


@contextlib.asynccontextmanager
async def ratelimit_serve(
    workdir: Path,
    rules: Path,
    *,
    redis: str | None = None,
    failure_mode: str | None = None,
    redis_timeout: float | None = None,
) -> AsyncIterator[RateLimitProcess]:
    """``gossamer ratelimit serve`` on a free loopback port, answering once up."""
    port = free_port()
    argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()", "ratelimit"]
    argv += ["serve", "--listen", f"127.0.0.1:{port}", "--rules", str(rules)]
    if redis:
        argv += ["--redis", redis]
    if failure_mode:
        argv += ["--failure-mode", failure_mode]
    if redis_timeout is not None:
        argv += ["--redis-timeout", str(redis_timeout)]
    proc = ManagedProcess(argv, log_path=workdir / f"ratelimit-{port}.log", name="ratelimit")
    await proc.start()
    try:

        async def up() -> bool:
            assert proc.running, proc.log_tail()
            return "listening on" in proc.log_tail()

        await wait_until(up, timeout=30, what="ratelimit serve to listen")
        yield RateLimitProcess(proc, RateLimitService("127.0.0.1", port))
    finally:
        await proc.stop(grace=5)


async def statuses(client: httpx.AsyncClient, url: str, n: int, **kw: Any) -> list[int]:
    return [(await client.get(url, **kw)).status_code for _ in range(n)]


@dataclass
class RateSeen:
    """What clients saw of a saturating run, per whole second (the protocol's ``1s``
    windows, aligned to the clock the services share with the test).

    The service counts a request in the window in which it checked it, some time between
    the client sending it and hearing the answer: a request sent and answered in one
    window was counted there (``certain``); one that crossed a boundary was counted in
    one of the windows it spans (``possible`` counts it in each)."""

    certain: Counter[int]
    possible: Counter[int]
    #: requests sent per window (whatever the answer)
    sent: Counter[int]
    statuses: Counter[int]
    windows: range


async def saturate(
    client: httpx.AsyncClient, urls: Sequence[str], seconds: int, per_url: int = 8
) -> RateSeen:
    """``per_url`` clients per URL asking back to back through ``seconds`` whole windows."""
    seen: list[tuple[float, float, int]] = []
    start = time.time()
    until = int(start) + seconds + 1.0  # whole windows: [int(start)+1, until)

    async def drive(url: str) -> None:
        while (sent := time.time()) < until:
            r = await client.get(url)
            seen.append((sent, time.time(), r.status_code))

    async with asyncio.TaskGroup() as tg:
        for _ in range(per_url):
            for url in urls:
                tg.create_task(drive(url))
    passed = [(int(a), int(b)) for a, b, status in seen if status == 200]
    return RateSeen(
        certain=Counter(a for a, b in passed if a == b),
        possible=Counter(w for a, b in passed for w in range(a, b + 1)),
        sent=Counter(int(a) for a, _, _ in seen),
        statuses=Counter(status for _, _, status in seen),
        windows=range(int(start) + 1, int(until)),
    )
