"""``GET /v1/statistics``: every component's statistics dataclass, turned into JSON here and
nowhere else (``/v1/authz/statistics`` too), so each answers in one shape.

The body has one object per component, each its dataclass as ``dataclasses.asdict`` makes
it: ``plane`` (``ControlPlaneStatistics`` without its parts), ``store``
(``StoreStatistics``), ``xds`` (``SnapshotCacheStatistics``), ``authz``
(``AuthzEngineStatistics``) and ``registry`` (``RegistryStatistics``); the last two are
``null`` when the API serves no NGAC engine or agent registry.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from gossamer.authz.service import AuthzService
from gossamer.controlplane.service import ControlPlaneService
from gossamer.registry import Registry

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


def as_json(statistics: DataclassInstance) -> dict[str, Any]:
    """One component's statistics as a JSON object (nested dataclasses as objects)."""
    return dataclasses.asdict(statistics)


def statistics_body(
    service: ControlPlaneService, authz: AuthzService | None, agents: Registry | None
) -> dict[str, Any]:
    """``/v1/statistics``: the plane's counters and its parts', NGAC's and the registry's."""
    plane = as_json(service.statistics())
    store, xds = plane.pop("store"), plane.pop("xds")
    return {
        "plane": plane,
        "store": store,
        "xds": xds,
        "authz": None if authz is None else as_json(authz.engine.statistics()),
        "registry": None if agents is None else as_json(agents.statistics()),
    }
