"""Routes about the proxies the control plane serves: their status and their config."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from gossamer.api.auth import Authenticator, require_operator
from gossamer.api.schemas import ErrorBody, ProxyList, ProxyStatusBody
from gossamer.controlplane.service import ControlPlaneService
from gossamer.errors import NotFoundError

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


def proxies_router(service: ControlPlaneService, auth: Authenticator | None = None) -> APIRouter:
    router = APIRouter(
        prefix="/v1/proxies",
        tags=["proxies"],
        responses={404: {"model": ErrorBody, "description": "no such proxy"}},
        dependencies=[require_operator(auth)],
    )

    @router.get("", response_model=ProxyList)
    async def list_proxies() -> ProxyList:
        """Every proxy the control plane knows: connected or not, synced, stale or rejected."""
        return ProxyList(items=[ProxyStatusBody.of(p) for p in service.proxy_status()])

    @router.get("/{node_id}", response_model=ProxyStatusBody)
    async def proxy(node_id: str) -> ProxyStatusBody:
        """One proxy's status, by node id (``sidecar~namespace~name``)."""
        for p in service.proxy_status():
            if p.node_id == node_id:
                return ProxyStatusBody.of(p)
        raise NotFoundError(f"no proxy {node_id!r} is known: list them with GET /v1/proxies")

    @router.get("/{node_id}/config", response_model=dict[str, Any])
    async def proxy_config(
        node_id: str,
        type: Annotated[ConfigType | None, Query(description="only this section")] = None,
    ) -> dict[str, object]:
        """Envoy's own config dump, read from the proxy's admin API."""
        dump = await service.proxy_config(node_id)
        return dump if type is None else select_section(dump, node_id, type)

    return router
