"""Kinds as people type them."""

from __future__ import annotations

import pytest

from gossamer.api.kind_names import plural, resolve_kind
from gossamer.errors import UnknownKindError, ValidationError
from gossamer.model.catalog import PUBLIC_KINDS as KINDS


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Service", "Service"),
        ("services", "Service"),
        ("SVC", "Service"),
        ("workload", "Workload"),
        ("Workloads", "Workload"),
        ("wl", "Workload"),
        ("gateways", "Gateway"),
        ("gw", "Gateway"),
        ("route", "Route"),
        ("rt", "Route"),
        ("mesh", "Mesh"),
        ("meshes", "Mesh"),
        (" Mesh ", "Mesh"),
    ],
)
def test_resolve(text: str, kind: str) -> None:
    assert resolve_kind(text) == kind


def test_plural() -> None:
    assert [plural(k) for k in ("Service", "Mesh", "AccessPolicy", "Gateway", "Box")] == [
        "services",
        "meshes",
        "accesspolicies",
        "gateways",
        "boxes",
    ]


def test_every_registered_kind_resolves_from_its_plural() -> None:
    for kind in KINDS:
        assert resolve_kind(plural(kind)) == kind
        assert resolve_kind(kind.upper()) == kind


def test_unknown_kind_is_a_validation_error_listing_valid_kinds() -> None:
    with pytest.raises(UnknownKindError) as info:
        resolve_kind("pod")
    assert isinstance(info.value, ValidationError)
    assert str(info.value).startswith("kind: unknown kind 'pod': valid kinds are ")
    assert all(k in str(info.value) for k in KINDS)
