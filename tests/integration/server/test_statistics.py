"""``GET /v1/statistics`` through a running control plane: one object per component, each
the fields of that component's statistics dataclass (docs/resources.md, "Statistics")."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from gossamer.authz.engine import AuthzEngineStatistics
from gossamer.controlplane.service import ControlPlaneStatistics
from gossamer.polling import wait_until
from gossamer.registry import HostScope, RegistryStatistics
from gossamer.store import StoreStatistics
from gossamer.testing import apply_manifests, running_control_plane
from gossamer.testing.ads_client import connect
from gossamer.testing.controlplane import api_client
from gossamer.testing.mesh import service, workload
from gossamer.types import ProxyIdentity
from gossamer.xds.cache import SnapshotCacheStatistics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def names(cls: type[Any], *without: str) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)} - set(without)


async def test_statistics_answer_one_object_per_component(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app, timeout=10) as c:
        await apply_manifests(
            app, [service("web"), workload("web-1", "web", "127.0.0.2", 15006, 8080)]
        )
        await app.agents.create_token(scope=HostScope(services=["web"]))
        web = ProxyIdentity("sidecar", "default", "web-1")
        async with connect(web, app.xds_addr):

            async def body() -> dict[str, Any] | None:
                r = await c.get(f"{app.api_url}/v1/statistics")
                assert r.status_code == 200, r.text
                got: dict[str, Any] = r.json()
                # its first snapshot is built just after it is counted as connected
                counted = got["plane"]["connected_proxies"] == got["xds"]["snapshots"] == 1
                return got if counted else None

            stats = await wait_until(body, timeout=30, what="web-1 connected and built")

    assert list(stats) == ["plane", "store", "xds", "authz", "registry"]
    assert set(stats["plane"]) == names(ControlPlaneStatistics, "store", "xds")
    assert set(stats["store"]) == names(StoreStatistics)
    assert set(stats["xds"]) == names(SnapshotCacheStatistics)
    assert set(stats["authz"]) == names(AuthzEngineStatistics)
    assert set(stats["registry"]) == names(RegistryStatistics)

    plane, store = stats["plane"], stats["store"]
    assert plane["ready"] is True
    # the Mesh, the two resources, the join token (and NGAC's bootstrap journal entry)
    assert plane["revision"] == store["revision"] >= 3
    assert plane["resources"] == store["resources"]
    assert store["backend"] == "sqlite"
    assert store["path"] == str(tmp_path / "cp" / "gossamer.db")
    assert store["watchers"] == 1  # the plane's one watch
    assert stats["xds"]["nodes"] == stats["xds"]["snapshots"] == 1
    assert stats["authz"]["skipped_journal_entries"] == []
    assert stats["authz"]["nodes"] > 0
    assert stats["registry"] == {
        "active_agents": 0,
        "unreachable_agents": 0,
        "revoked_agents": 0,
        "unused_tokens": 1,
    }
