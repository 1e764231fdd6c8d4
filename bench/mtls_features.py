"""Where the generated mTLS chain's per-request cost comes from: instructions, per feature.

Run: ``.venv/bin/python bench/mtls_features.py [--requests 1000] [--only NAME ...] [--jobs 2]``

Wall-clock CPU on this shared 2-core machine spreads 0.85-1.5x round to round, too much to
resolve a few per cent; ``perf stat`` has no counters here. So each variant's two Envoys
(front = caller, back = callee, the hand-written static mTLS pair of ``static_mtls.py``
with one thing of Gossamer's generated config added) run under ``valgrind
--tool=callgrind``, which counts the instructions they execute: the same for the same
binary, config and requests whatever else the machine does. Instrumentation is switched
on (``callgrind_control -i on``) after a warm-up (the TLS handshake, pools, first-request
allocations), ``--requests`` requests are sent over one keep-alive connection, one at a
time (the 1-connection case), and the totals are dumped; the figure is both Envoys'
instructions per request, and the ratio to the ``static`` variant measured in the same run.

The ``gossamer`` variant is the generated config, built by Gossamer's own translate
functions (``hcm.http_connection_manager``, ``routes.default_route``, the caller's cluster
thresholds, the inbound RBAC peer check and NGAC's HTTP filters), made static: ECDS
configs inline (local rate limit, ``jwt_authn``: the same typed configs), route tables
inline instead of RDS, certificates inline instead of SDS, endpoints inline instead of
EDS. None of these moves changes what Envoy does per request. Loopback only; bounded by
``--requests`` (<= 5000).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeAlias

from _common import http_load
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.cluster.v3 import circuit_breaker_pb2
from envoy.config.route.v3 import route_components_pb2 as rc_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.type.v3 import percent_pb2
from mtls_chain import backend, identity
from static_mtls import Identity, back_bootstrap, front_bootstrap

from gossamer.ca.authority import CertificateAuthority
from gossamer.envoy.binary import find_envoy
from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.validate import validate_config
from gossamer.model.mesh import Mesh
from gossamer.testing.ports import free_port
from gossamer.translate import (
    ext_authz,
    filters,
    global_rate_limit,
    jwt,
    rate_limit,
    rbac,
    routes,
    tls,
)
from gossamer.translate.hcm import http_connection_manager
from gossamer.types import spiffe_id

TD = "bench.local"
FRONT, BACK, APP = "127.0.0.6", "127.0.0.7", "127.0.0.5"
HCM: TypeAlias = hcm_pb2.HttpConnectionManager
Boots = tuple[bootstrap_pb2.Bootstrap, bootstrap_pb2.Bootstrap]  # (front, back)


def mesh() -> Mesh:
    return Mesh.model_validate(
        {"apiVersion": "gossamer.dev/v1", "kind": "Mesh", "metadata": {"name": "default"}}
    )


# ---- reaching into the static pair -----------------------------------------------------


def _hcm(boot: bootstrap_pb2.Bootstrap) -> HCM:
    hcm = HCM()
    boot.static_resources.listeners[0].filter_chains[0].filters[-1].typed_config.Unpack(hcm)
    return hcm


def _set_hcm(boot: bootstrap_pb2.Bootstrap, hcm: HCM) -> None:
    boot.static_resources.listeners[0].filter_chains[0].filters[-1].typed_config.Pack(hcm)


def each_hcm(change: Callable[[HCM], None]) -> Callable[[Boots], None]:
    def apply(boots: Boots) -> None:
        for boot in boots:
            hcm = _hcm(boot)
            change(hcm)
            _set_hcm(boot, hcm)

    return apply


def _front_route(boots: Boots) -> tuple[HCM, rc_pb2.Route]:
    hcm = _hcm(boots[0])
    return hcm, hcm.route_config.virtual_hosts[0].routes[0]


def _before_router(hcm: HCM, filter_: hcm_pb2.HttpFilter) -> None:
    hcm.http_filters.insert(len(hcm.http_filters) - 1, filter_)


def _inline_local_rate_limit(stat_prefix: str) -> hcm_pb2.HttpFilter:
    """The generated local rate-limit filter with its ECDS config inline (no budgets)."""
    return hcm_pb2.HttpFilter(
        name=rate_limit.filter_name(stat_prefix),
        typed_config=rate_limit.extension_config(stat_prefix, ()).typed_config,
    )


# ---- the features, each on its own -----------------------------------------------------


def normalise(hcm: HCM) -> None:
    hcm.normalize_path.value = True
    hcm.merge_slashes = True
    hcm.path_with_escaped_slashes_action = HCM.UNESCAPE_AND_REDIRECT


def protections(hcm: HCM) -> None:
    """Header checks and explicit timeouts (the non-path part of the generated HCM)."""
    generated = http_connection_manager("x", mesh(), route_config=hcm.route_config)
    hcm.common_http_protocol_options.CopyFrom(generated.common_http_protocol_options)
    hcm.stream_error_on_invalid_http_message.value = True
    for name in ("request_headers_timeout", "stream_idle_timeout", "drain_timeout"):
        getattr(hcm, name).CopyFrom(getattr(generated, name))
    hcm.preserve_external_request_id = True


def upgrades(hcm: HCM) -> None:
    hcm.upgrade_configs.add(upgrade_type="websocket")
    hcm.http2_protocol_options.allow_connect = True
    hcm.http2_protocol_options.max_concurrent_streams.value = 1024


def local_limit(hcm: HCM) -> None:
    _before_router(hcm, _inline_local_rate_limit(hcm.stat_prefix))


def global_limit(hcm: HCM) -> None:
    _before_router(hcm, global_rate_limit.http_filter(mesh().spec.rateLimit))


def fault(hcm: HCM) -> None:
    _before_router(hcm, filters.traffic_filters(hcm.stat_prefix)[-1])
    hcm.http_filters[-2].disabled = False


def off(add: Callable[[HCM], None]) -> Callable[[HCM], None]:
    """``add``'s filter present but ``disabled`` (on only for routes that turn it on, as
    Gossamer now generates it): what an unused filter still costs."""

    def apply(hcm: HCM) -> None:
        add(hcm)
        hcm.http_filters[-2].disabled = True

    return apply


def retries(boots: Boots) -> None:
    """The caller's default retry policy (previous hosts/priorities) and retry budget."""
    hcm, route = _front_route(boots)
    route.route.retry_policy.CopyFrom(routes.retry_policy(mesh().spec.defaults.retries))
    _set_hcm(boots[0], hcm)
    budget = circuit_breaker_pb2.CircuitBreakers.Thresholds()
    budget.retry_budget.budget_percent.value = 20
    budget.retry_budget.min_retry_concurrency.value = 3
    boots[0].static_resources.clusters[0].circuit_breakers.thresholds.append(budget)


def route_timeouts(boots: Boots) -> None:
    """The caller's route timeout and gRPC deadline cap; the callee's route without one."""
    hcm, route = _front_route(boots)
    route.route.timeout.FromTimedelta(timedelta(seconds=30))
    routes.honour_grpc_deadline(route.route, timedelta(seconds=30))
    _set_hcm(boots[0], hcm)
    back = _hcm(boots[1])
    back.route_config.virtual_hosts[0].routes[0].route.timeout.FromTimedelta(timedelta(0))
    _set_hcm(boots[1], back)


def panic_threshold(boots: Boots) -> None:
    cluster = boots[0].static_resources.clusters[0]
    cluster.common_lb_config.healthy_panic_threshold.CopyFrom(percent_pb2.Percent(value=0))


def peer_rbac(boots: Boots) -> None:
    chain = boots[1].static_resources.listeners[0].filter_chains[0]
    chain.filters.insert(0, tls.peer_id_filter(TD))


def ngac_rbac(boots: Boots) -> None:
    """The callee's HTTP RBAC filter of NGAC enforcement (``translate.rbac``), no policy."""
    back = _hcm(boots[1])
    back.http_filters.insert(0, rbac.http_filter())
    _set_hcm(boots[1], back)


def _inline_jwt() -> hcm_pb2.HttpFilter:
    """The inbound ``jwt_authn`` filter with its ECDS config (no issuer) inline."""
    return hcm_pb2.HttpFilter(
        name=jwt.JWT_FILTER, typed_config=jwt.extension_config(()).typed_config
    )


def jwt_authn(boots: Boots) -> None:
    """The callee's ``jwt_authn`` filter (end users, ``translate.jwt``), no route asking."""
    back = _hcm(boots[1])
    back.http_filters.insert(0, _inline_jwt())
    _set_hcm(boots[1], back)


def ngac_rbac_off(boots: Boots) -> None:
    back = _hcm(boots[1])
    back.http_filters.insert(0, rbac.http_filter())
    back.http_filters[0].disabled = True
    _set_hcm(boots[1], back)


def gossamer(boots: Boots) -> None:
    """The generated HCMs (inline), routes, caller cluster thresholds and RBAC."""
    for i, boot in enumerate(boots):
        old = _hcm(boot)
        cluster = boot.static_resources.clusters[0].name
        route = (
            routes.default_route(cluster, mesh().spec.defaults.requestTimeout, grpc=False,
                                 retries=mesh().spec.defaults.retries)
            if i == 0 else routes.default_route(cluster, None, grpc=False)
        )  # fmt: skip
        table = routes.route_configuration(old.route_config.name, [("all", ["*"], [route])])
        hcm = http_connection_manager(old.stat_prefix, mesh(), route_config=table)
        for j, f in enumerate(hcm.http_filters):
            if f.HasField("config_discovery"):
                hcm.http_filters[j].CopyFrom(_inline_local_rate_limit(old.stat_prefix))
        hcm.forward_client_cert_details = old.forward_client_cert_details
        hcm.set_current_client_cert_details.CopyFrom(old.set_current_client_cert_details)
        if i == 1:  # the inbound HCM (translate.proxy): NGAC's filters, as generated
            hcm.http_filters.insert(0, rbac.http_filter())
            hcm.http_filters.insert(1, _inline_jwt())
            hcm.http_filters.insert(2, ext_authz.http_filter())
        _set_hcm(boot, hcm)
    retries_budget = circuit_breaker_pb2.CircuitBreakers.Thresholds()
    retries_budget.retry_budget.budget_percent.value = 20
    retries_budget.retry_budget.min_retry_concurrency.value = 3
    boots[0].static_resources.clusters[0].circuit_breakers.thresholds.append(retries_budget)
    panic_threshold(boots)
    peer_rbac(boots)


def hardened(boots: Boots) -> None:
    """The static pair with the defaults any careful mesh would have (a fair reference):
    path normalisation, header checks and timeouts, WebSocket, the caller's retries with a
    budget and its route timeout, the callee's route without one."""
    for change in (normalise, protections, upgrades):
        each_hcm(change)(boots)
    retries(boots)
    route_timeouts(boots)


VARIANTS: dict[str, Callable[[Boots], None]] = {
    "static": lambda boots: None,
    # the reference again: how far two measurements of one config fall apart
    "static_again": lambda boots: None,
    "normalise": each_hcm(normalise),
    "protections": each_hcm(protections),
    "upgrades": each_hcm(upgrades),
    "local_rate_limit": each_hcm(local_limit),
    "global_rate_limit": each_hcm(global_limit),
    "fault": each_hcm(fault),
    "global_rate_limit_off": each_hcm(off(global_limit)),
    "fault_off": each_hcm(off(fault)),
    "retries": retries,
    "route_timeouts": route_timeouts,
    "panic_threshold": panic_threshold,
    "peer_rbac": peer_rbac,
    "ngac_rbac": ngac_rbac,
    "ngac_rbac_off": ngac_rbac_off,
    "jwt_authn": jwt_authn,
    "hardened": hardened,
    "gossamer": gossamer,
}


# ---- running a pair under callgrind ----------------------------------------------------


def valgrind_wrapper(directory: Path) -> str:
    """An executable that runs the real Envoy binary under callgrind, instrumentation off
    until ``callgrind_control -i on``, one output file per process."""
    real = os.path.realpath(find_envoy())
    candidates = sorted(Path(sys.prefix).glob("lib/python3*/site-packages/envoy/_bin/envoy"))
    binary = str(candidates[0]) if candidates else real  # skip the Python wrapper
    script = directory / "envoy-callgrind"
    script.write_text(
        "#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes "
        f'--callgrind-out-file={directory}/callgrind.%p {binary} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


async def callgrind(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "callgrind_control", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)}: {out.decode()}")
    return out.decode()


def worker_instructions(directory: Path, pid: int) -> int:
    """Instructions of ``pid``'s busiest thread (its one worker: ``--concurrency 1``) since
    instrumentation began; the main thread's timer-driven work (stats flushes, ...) depends
    on how long the run took, not on the requests, so it is left out."""
    per_thread: list[int] = []
    for f in directory.glob(f"callgrind.{pid}*"):
        for line in f.read_text(errors="replace").splitlines():
            if m := re.match(r"^(?:totals|summary): (\d+)", line):
                per_thread.append(int(m.group(1)))
                break
    return max(per_thread, default=0)


@contextlib.asynccontextmanager
async def pair(boots: Boots, workdir: Path, binary: str) -> AsyncIterator[tuple[int, int]]:
    for boot in boots:
        await validate_config(boot)
    back = EnvoyProcess(boots[1], binary=binary, log_level="warning", start_timeout=600,
                        name="back", workdir=workdir / "back")  # fmt: skip
    front = EnvoyProcess(boots[0], binary=binary, log_level="warning", start_timeout=600,
                         name="front", workdir=workdir / "front")  # fmt: skip
    async with back, front:
        yield front.pid, back.pid


async def measure(
    name: str,
    ident: tuple[Identity, Identity],
    app: tuple[str, int],
    args: argparse.Namespace,
    workdir: Path,
) -> float:
    """Both Envoys' instructions per request for variant ``name``."""
    front_id, back_id = ident
    front = (FRONT, free_port(FRONT))
    back = (BACK, free_port(BACK))
    boots: Boots = (
        front_bootstrap(front, back, front_id, spiffe_id(TD, "default", "static-backend")),
        back_bootstrap(back, app, back_id, TD),
    )
    VARIANTS[name](boots)
    out = workdir / name
    out.mkdir()
    binary = valgrind_wrapper(out)
    async with pair(boots, out, binary) as pids:
        for _ in range(60):  # the pair answers once both are up (slow under valgrind)
            if (await http_load(front, 1, max_requests=1, max_seconds=20)).requests == 1:
                break
        else:
            raise RuntimeError(f"{name}: the pair never answered")
        await http_load(front, 1, max_requests=args.warmup, max_seconds=300)
        for pid in pids:
            await callgrind("-i", "on", str(pid))
        res = await http_load(front, 1, max_requests=args.requests, max_seconds=600)
        for pid in pids:
            await callgrind("-d", str(pid))
        if res.requests != args.requests or res.errors:
            raise RuntimeError(f"{name}: {res.requests} answered, {res.errors} errors")
        return sum(worker_instructions(out, pid) for pid in pids) / res.requests


async def run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="gossamer-mtls-features-") as name:
        tmp = Path(name)
        ca = await asyncio.to_thread(CertificateAuthority.load_or_create, tmp / "ca", TD)
        ident = (await identity(ca, "static-caller"), await identity(ca, "static-backend"))
        app = (APP, free_port(APP))
        results: dict[str, float] = {}
        gate = asyncio.Semaphore(args.jobs)

        async def one(variant: str) -> None:
            async with gate:
                results[variant] = await measure(variant, ident, app, args, tmp)
                print(f"{variant:18s} {results[variant]:12,.0f} instructions/request", flush=True)

        async with backend(app), asyncio.TaskGroup() as tg:
            for variant in args.only or VARIANTS:
                tg.create_task(one(variant))
        return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000, help="measured requests (<= 5000)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2, help="variants measured at once (<= 4)")
    parser.add_argument("--only", nargs="*", choices=list(VARIANTS), default=None)
    args = parser.parse_args()
    args.requests = max(10, min(args.requests, 5000))
    args.warmup = max(1, min(args.warmup, 5000))
    args.jobs = max(1, min(args.jobs, 4))
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("valgrind (with callgrind_control) is needed: apt-get install valgrind")
    if args.only and "static" not in args.only:
        args.only = ["static", *args.only]
    results = asyncio.run(run(args))
    base = results["static"]
    print(f"\n{'variant':18s} {'instr/req':>12} {'vs static':>9}")
    for variant in VARIANTS:
        if variant in results:
            r = results[variant]
            print(f"{variant:18s} {r:12,.0f} {r / base:8.3f}x  ({r - base:+,.0f})")


if __name__ == "__main__":
    main()
