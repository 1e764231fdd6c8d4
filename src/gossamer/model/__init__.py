"""Declarative resources (Kubernetes style), their validation and consistent snapshots."""

from gossamer.model.base import Resource
from gossamer.model.catalog import KINDS, parse_manifest
from gossamer.model.external_service import ExternalService
from gossamer.model.gateway import Gateway
from gossamer.model.loader import parse_yaml
from gossamer.model.mesh import Mesh
from gossamer.model.references import check_changes, check_references
from gossamer.model.route import Route
from gossamer.model.service import Service
from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.traffic_policy import TrafficPolicy
from gossamer.model.workload import Workload

__all__ = [
    "KINDS",
    "ExternalService",
    "Gateway",
    "Mesh",
    "ModelSnapshot",
    "Ref",
    "Resource",
    "Route",
    "Service",
    "TrafficPolicy",
    "Workload",
    "check_changes",
    "check_references",
    "parse_manifest",
    "parse_yaml",
]
