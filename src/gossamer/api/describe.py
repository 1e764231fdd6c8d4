"""``GET /v1/describe/services/{ns}/{name}``, ``/v1/describe/routes/{ns}/{name}`` and
``/v1/describe/mesh``: what ``gossamer describe`` prints (``gossamer.controlplane.describe``
and ``describe_mesh`` assemble it).

Reads only (operator read right). The proxies' counters come through the hosts that run
them, over each host's long-poll (``registry.dumps``), all at once within ``timeout``
seconds; a proxy whose host is offline or slow is listed with why, never left out.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.schemas import ErrorBody
from gossamer.controlplane.describe import (
    Caller,
    Observed,
    describe_route,
    describe_service,
    not_found,
    route_callers,
    service_callers,
)
from gossamer.controlplane.describe_mesh import describe_mesh
from gossamer.controlplane.jwks_refresh import JwksRefresher
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import GossamerError, NotReadyError
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.registry import Registry
from gossamer.registry.dumps import MAX_DUMP_TIMEOUT_S, DumpBroker, runners_of

#: how long the hosts have to send their proxies' counters unless told
DEFAULT_STATS_TIMEOUT_S = 5.0


async def _stats(
    registry: Registry,
    dumps: DumpBroker,
    model: ModelSnapshot,
    c: Caller,
    timeout: float,  # noqa: ASYNC109
) -> tuple[dict[str, int] | None, str | None]:
    """The caller's counters, read by a host that runs it; (None, why) if none could."""
    runners = runners_of(model, c.node_id)
    if not runners:
        return None, (
            f"no host runs {c.node_id}: its counters are read only through its agent or "
            "gateway host"
        )
    live = [a for a in runners if registry.presence.status(a.spec.host) == "active"]
    if not live:
        hosts = ", ".join(a.spec.host for a in runners)
        return None, f"its host {hosts} is offline (no heartbeat, no xDS stream)"
    polling = [a for a in live if dumps.polling(a.metadata.name)]
    runner = (polling or live)[0]
    try:
        stats = await dumps.stats(
            runner.metadata.name, c.node_id, c.stats.all(), host=runner.spec.host, timeout=timeout
        )
    except (GossamerError, ValueError) as e:
        return None, str(e)
    return stats, None


async def observe(
    registry: Registry,
    dumps: DumpBroker | None,
    model: ModelSnapshot,
    callers: list[Caller],
    *,
    timeout: float,  # noqa: ASYNC109
    with_stats: bool,
) -> dict[str, Observed]:
    """What the control plane knows of each caller, their counters read concurrently."""
    monitor = registry.plane.monitor
    statuses = {p.node_id: p for p in monitor.statuses()}
    read: dict[str, tuple[dict[str, int] | None, str | None]] = {}
    if with_stats and dumps is not None:
        async with asyncio.TaskGroup() as tg:
            tasks = {
                c.node_id: tg.create_task(_stats(registry, dumps, model, c, timeout))
                for c in callers
            }
        read = {n: t.result() for n, t in tasks.items()}
    out: dict[str, Observed] = {}
    for c in callers:
        status = statuses.get(c.node_id)
        host = c.host or (status.host if status else None)
        stats, error = read.get(c.node_id, (None, "not asked"))
        out[c.node_id] = Observed(
            status=status,
            acks=monitor.resource_acks(c.node_id, c.selects),
            host_state=registry.presence.status(host) if host else None,
            stats=stats,
            stats_error=error,
        )
    return out


def _hosts(registry: Registry, model: ModelSnapshot, ref: Ref) -> dict[str, str]:
    hosts = {w.spec.host for w in model.workloads_of(ref) if w.spec.host}
    state = {"active": "online", "unreachable": "offline"}
    return {h: state[registry.presence.status(h)] for h in hosts}


def describe_router(
    registry: Registry, dumps: DumpBroker | None, auth: Authenticator | None = None
) -> APIRouter:
    router = APIRouter(
        prefix="/v1/describe",
        tags=["describe"],
        responses={404: {"model": ErrorBody, "description": "no such service or route"}},
        dependencies=[require_operator(auth)],
    )

    def model() -> ModelSnapshot:
        loaded = registry.plane.model
        if loaded is None:
            raise NotReadyError("the control plane is still loading; try again in a moment")
        return loaded

    @router.get("/services/{namespace}/{name}", response_model=dict[str, Any])
    async def service(
        namespace: str,
        name: str,
        wait_timeout: Annotated[
            float,
            Query(
                alias="timeout",
                gt=0,
                le=MAX_DUMP_TIMEOUT_S,
                description="seconds the proxies' hosts have to send their counters",
            ),
        ] = DEFAULT_STATS_TIMEOUT_S,
    ) -> dict[str, Any]:
        """A service, its workloads, every Route and TrafficPolicy that shapes traffic to
        it, which callers have that config ACKed, and the response flags their Envoys
        counted for it."""
        snap, ref = model(), (namespace, name)
        if ref not in snap.services:
            raise not_found(snap, "Service", ref)
        callers = service_callers(snap, ref)
        seen = await observe(registry, dumps, snap, callers, timeout=wait_timeout, with_stats=True)
        return describe_service(snap, ref, seen, _hosts(registry, snap, ref))

    @router.get("/routes/{namespace}/{name}", response_model=dict[str, Any])
    async def route(namespace: str, name: str) -> dict[str, Any]:
        """A Route's rules in evaluation order and which proxies have them ACKed."""
        snap, ref = model(), (namespace, name)
        found = snap.routes.get(ref)
        if found is None:
            raise not_found(snap, "Route", ref)
        callers = route_callers(snap, found)
        seen = await observe(registry, dumps, snap, callers, timeout=0, with_stats=False)
        return describe_route(snap, ref, seen)

    @router.get("/addresses", response_model=dict[str, Any])
    async def addresses() -> dict[str, Any]:
        """The stable local address apps dial for each Service and ExternalService (given,
        or allocated in 127.128.0.0/9): what ``gossamer get services`` shows."""
        snap = model()
        kinds = {**{r: "ExternalService" for r in snap.external_services}}
        kinds.update({r: "Service" for r in snap.services})
        return {
            "items": [
                {
                    "kind": kinds.get(ref, "Service"),
                    "namespace": ref[0],
                    "name": ref[1],
                    "address": address,
                }
                for ref, address in sorted(snap.local_addresses.items())
            ]
        }

    return router


def mesh_router(
    plane: ControlPlane, refresher: JwksRefresher, auth: Authenticator | None
) -> APIRouter:
    """``GET /v1/describe/mesh`` (operator read right): the Mesh's settings and its
    end-user issuers' keys, with the state of fetching each ``jwks.uri``."""
    router = APIRouter(prefix="/v1/describe", tags=["describe"])

    @router.get("/mesh", response_model=dict[str, Any], dependencies=[require_operator(auth)])
    async def mesh() -> dict[str, Any]:
        """The Mesh's trust domain and modes; per JWT issuer where its keys come from and,
        for a ``jwks.uri``, the keys the proxies have, the last successful fetch, since when
        fetches fail and the last error."""
        model = plane.model
        if model is None:
            raise NotReadyError("the control plane is still loading; try again in a moment")
        lead = plane.leadership
        fetcher = None if lead.leading else f"replica {lead.leader or '(none leads now)'}"
        return describe_mesh(model, refresher, fetcher)

    return router
