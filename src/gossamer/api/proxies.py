"""Routes about the proxies the control plane serves: their status, a summary of them
(``GET /v1/proxies/summary``: the xDS metrics of ``/metrics``, read back) and their config."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from prometheus_client import CollectorRegistry
from pydantic import Field

from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.schemas import Body, ErrorBody, ProxyStatusBody
from gossamer.controlplane.service import ControlPlaneService
from gossamer.errors import NotFoundError
from gossamer.registry import Registry
from gossamer.registry.dumps import (
    DEFAULT_DUMP_TIMEOUT_S,
    MAX_DUMP_TIMEOUT_S,
    DumpBroker,
    runners_of,
)
from gossamer.xds.metrics import XdsSummary, summary_of
from gossamer.xds.status import ProxyStatus

ConfigType = Literal["clusters", "listeners", "routes", "endpoints"]

#: ``--type`` -> the config dump section Envoy's admin API answers with
SECTIONS: dict[str, str] = {
    "clusters": "ClustersConfigDump",
    "listeners": "ListenersConfigDump",
    "routes": "RoutesConfigDump",
    "endpoints": "EndpointsConfigDump",
}


def _section_name(config: object) -> str:
    kind = config.get("@type", "") if isinstance(config, dict) else ""
    return str(kind).rsplit(".", 1)[-1]


def select_section(dump: dict[str, object], node_id: str, type_: str) -> dict[str, object]:
    """The part of an Envoy config dump about one resource type, still as a config dump."""
    configs = dump.get("configs")
    sections = configs if isinstance(configs, list) else []
    chosen = [c for c in sections if _section_name(c) == SECTIONS[type_]]
    if not chosen:
        present = ", ".join(_section_name(c) for c in sections) or "none"
        raise NotFoundError(
            f"the config dump of {node_id} has no {SECTIONS[type_]} (sections present: "
            f"{present}); Envoy lists endpoints only when asked to include EDS"
        )
    return {"configs": chosen}


class ProxySdsStatusBody(ProxyStatusBody):
    #: what its Envoy ACKed over SDS, as its host last reported (secret -> version:
    #: ``identity`` = the certificate's serial, ``trust-bundle`` = a digest); root
    #: rotation waits on it ({}: no report)
    sds: dict[str, str] = Field(default_factory=dict)


class ProxySdsList(Body):
    items: list[ProxySdsStatusBody]


class TypeLatencyBody(Body):
    #: a resource type (``clusters``, ``endpoints``, ...) or ``all`` (every type at once)
    type: str
    #: changes measured since the control plane started
    count: int
    #: estimated from the histogram's buckets as PromQL's ``histogram_quantile``
    p50_seconds: float | None
    p99_seconds: float | None


class ProxySummaryBody(Body):
    """The proxies at a glance, from the same figures as ``/metrics``."""

    connected: int
    in_sync: int
    out_of_sync: int
    nacking: int
    #: xDS responses sent and not yet ACKed or NACKed
    queue_depth: int
    latency: list[TypeLatencyBody]

    @classmethod
    def of(cls, s: XdsSummary) -> ProxySummaryBody:
        return cls(
            connected=s.connected,
            in_sync=s.in_sync,
            out_of_sync=s.out_of_sync,
            nacking=s.nacking,
            queue_depth=s.queue_depth,
            latency=[
                TypeLatencyBody(type=t.type, count=t.count, p50_seconds=t.p50, p99_seconds=t.p99)
                for t in s.latency
            ],
        )


def with_sds(p: ProxyStatus, agents: Registry | None) -> ProxySdsStatusBody:
    body = ProxyStatusBody.of(p)
    acked = dict(agents.sds_acks.of(p.node_id)) if agents is not None else {}
    return ProxySdsStatusBody.model_validate({**body.__dict__, "sds": acked})


def proxies_router(
    service: ControlPlaneService,
    auth: Authenticator | None = None,
    *,
    agents: Registry | None = None,
    dumps: DumpBroker | None = None,
    metrics: CollectorRegistry | None = None,
) -> APIRouter:
    """Without ``agents`` and ``dumps`` no host can be asked for a config dump; without
    ``metrics`` (the registry the xDS monitor feeds) there is no summary."""
    router = APIRouter(
        prefix="/v1/proxies",
        tags=["proxies"],
        responses={404: {"model": ErrorBody, "description": "no such proxy"}},
        dependencies=[require_operator(auth)],
    )

    @router.get("", response_model=ProxySdsList)
    async def list_proxies() -> ProxySdsList:
        """Every proxy the control plane knows: connected or not, synced, stale or
        rejected, and what its Envoy ACKed over SDS."""
        return ProxySdsList(items=[with_sds(p, agents) for p in service.proxy_status()])

    @router.get("/summary", response_model=ProxySummaryBody)
    async def summary() -> ProxySummaryBody:
        """Proxies connected, in sync, out of sync and NACKing, xDS responses in flight
        (queue depth), and push latency p50/p99 per type since the control plane started:
        the figures ``/metrics`` exposes (docs/xds.md, "Metrics")."""
        if metrics is None:
            raise NotFoundError("this API serves no xDS metrics: ask the control plane's API")
        return ProxySummaryBody.of(summary_of(metrics))

    @router.get("/{node_id}", response_model=ProxySdsStatusBody)
    async def proxy(node_id: str) -> ProxySdsStatusBody:
        """One proxy's status, by node id (``sidecar~namespace~name``)."""
        for p in service.proxy_status():
            if p.node_id == node_id:
                return with_sds(p, agents)
        raise NotFoundError(f"no proxy {node_id!r} is known: list them with GET /v1/proxies")

    @router.get("/{node_id}/config", response_model=dict[str, Any])
    async def proxy_config(
        node_id: str,
        type: Annotated[ConfigType | None, Query(description="only this section")] = None,
        wait_timeout: Annotated[
            float,
            Query(alias="timeout", gt=0, le=MAX_DUMP_TIMEOUT_S, description="seconds to wait"),
        ] = DEFAULT_DUMP_TIMEOUT_S,
    ) -> dict[str, object]:
        """Envoy's own config dump, read from its admin API by the host that runs the
        proxy (its agent or gateway host, over that host's long-poll). The control plane
        never connects to a proxy itself, whatever the proxy announces."""
        model = agents.plane.model if agents is not None else None
        runners = runners_of(model, node_id) if model is not None else []
        if not runners or dumps is None:
            raise NotFoundError(
                f"no host runs {node_id}; its config dump is available only through its "
                "agent or gateway"
            )
        # a gateway's replicas each run one: ask one that is polling now, if any
        polling = [a for a in runners if dumps.polling(a.metadata.name)]
        runner = (polling or runners)[0]
        dump = await dumps.config_dump(
            runner.metadata.name,
            node_id,
            host=runner.spec.host,
            include_eds=type in (None, "endpoints"),
            timeout=wait_timeout,
        )
        return dump if type is None else select_section(dump, node_id, type)

    return router
