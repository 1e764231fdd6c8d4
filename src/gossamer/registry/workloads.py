"""Checking what an agent registers: only Workloads, only for its own host, labelled as its."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from gossamer.errors import FieldError, ValidationError
from gossamer.model.catalog import parse_manifest
from gossamer.model.snapshot import ModelSnapshot
from gossamer.model.workload import Health, Workload
from gossamer.registry.record_manifests import MANAGED_BY_LABEL
from gossamer.types import OWNER_LABEL, ProxyIdentity, ResourceKey

HEALTH_VALUES: tuple[str, ...] = get_args(Health)


def owned_workloads(snap: ModelSnapshot, agent_id: str) -> dict[ResourceKey, Workload]:
    """The Workloads ``agent_id`` registered, by key."""
    return {
        w.key: w for w in snap.workloads.values() if w.metadata.labels.get(OWNER_LABEL) == agent_id
    }


def _labelled(manifest: dict[str, Any], agent_id: str, host: str) -> dict[str, Any]:
    out = copy.deepcopy(manifest)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        labels = meta.setdefault("labels", {})
        if isinstance(labels, dict):
            labels[MANAGED_BY_LABEL] = "agent"
            labels[OWNER_LABEL] = agent_id
    spec = out.get("spec")
    if isinstance(spec, dict):
        spec.setdefault("host", host)
    return out


def prepare_workloads(manifests: Sequence[object], agent_id: str, host: str) -> list[Workload]:
    """The Workloads an agent's manifests describe, labelled as the agent's.

    ``spec.host`` defaults to the agent's host and must be it. Raises ``ValidationError``
    naming every bad manifest and field; nothing is changed.
    """
    errors: list[FieldError] = []
    out: list[Workload] = []
    seen: set[ResourceKey] = set()
    for i, manifest in enumerate(manifests):
        where = f"workloads[{i}]"
        if not isinstance(manifest, dict):
            errors.append(FieldError("must be a Workload manifest (a mapping)", where))
            continue
        if manifest.get("kind") != "Workload":
            errors.append(
                FieldError(
                    f"an agent registers only Workloads, not {manifest.get('kind')!r}",
                    f"{where}.kind",
                )
            )
            continue
        try:
            parsed = parse_manifest(_labelled(manifest, agent_id, host), source=where)
        except ValidationError as e:
            errors.extend(e.errors)
            continue
        assert isinstance(parsed, Workload)
        if parsed.spec.host != host:
            errors.append(
                FieldError(
                    f"is {parsed.spec.host!r}, but this agent joined as host {host!r}: an "
                    "agent registers only its own host's workloads",
                    "spec.host",
                    str(parsed.key),
                    where,
                )
            )
        elif parsed.key in seen:
            errors.append(
                FieldError(
                    "is listed twice: give each Workload its own name",
                    "metadata.name",
                    str(parsed.key),
                    where,
                )
            )
        else:
            seen.add(parsed.key)
            out.append(parsed)
    if errors:
        raise ValidationError(errors)
    return out


def with_health(
    owned: Mapping[ResourceKey, Workload], health: Mapping[str, str], agent_id: str
) -> list[Workload]:
    """The agent's Workloads named in ``health`` (``NAME`` or ``NAMESPACE/NAME``) with their
    new ``spec.health``. Raises ``ValidationError`` for an unknown name or value."""
    errors: list[FieldError] = []
    out: list[Workload] = []
    for name, value in health.items():
        path = f"workloads.{name}"
        if value not in HEALTH_VALUES:
            errors.append(
                FieldError(
                    f"{value!r} is not a health: use one of {', '.join(HEALTH_VALUES)}", path
                )
            )
            continue
        w = _named(owned, name, agent_id, path, errors)
        if w is not None:
            manifest = w.to_manifest()
            manifest["spec"]["health"] = value
            updated = parse_manifest(manifest)
            assert isinstance(updated, Workload)
            out.append(updated)
    if errors:
        raise ValidationError(errors)
    return out


def _named(
    owned: Mapping[ResourceKey, Workload],
    name: str,
    agent_id: str,
    path: str,
    errors: list[FieldError],
) -> Workload | None:
    """The agent's Workload ``name`` (``NAME`` or ``NAMESPACE/NAME``); None, with the
    reason added to ``errors``, if it has none or several."""
    ns, _, short = name.rpartition("/")
    matches = [w for k, w in owned.items() if k.name == short and (not ns or k.namespace == ns)]
    if not matches:
        known = ", ".join(f"{k.namespace}/{k.name}" for k in sorted(owned)) or "none"
        errors.append(
            FieldError(
                f"agent {agent_id} has no Workload {name!r}; its workloads are: {known}", path
            )
        )
        return None
    if len(matches) > 1:
        errors.append(
            FieldError(
                f"{name!r} names Workloads in several namespaces: write NAMESPACE/NAME", path
            )
        )
        return None
    return matches[0]


def holding_secrets(
    owned: Mapping[ResourceKey, Workload],
    secrets: Mapping[str, Mapping[str, str]],
    agent_id: str,
    needed: Sequence[str],
) -> frozenset[str]:
    """Node ids of the agent's sidecars whose Envoy holds every secret in ``needed``, from
    its report ``secrets`` (Workload ``NAME`` or ``NAMESPACE/NAME`` -> secret name ->
    version ACKed over SDS). Raises ``ValidationError`` for a Workload it did not register.
    """
    errors: list[FieldError] = []
    out: set[str] = set()
    for name, held in secrets.items():
        w = _named(owned, name, agent_id, f"secrets.{name}", errors)
        if w is not None and all(held.get(n) for n in needed):
            out.add(ProxyIdentity("sidecar", w.metadata.namespace, w.metadata.name).node_id)
    if errors:
        raise ValidationError(errors)
    return frozenset(out)
