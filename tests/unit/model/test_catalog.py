"""The kind catalog and parse_manifest: dispatch, error rendering, and the round trip."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from hypothesis import given, settings

import gossamer.model.catalog as catalog
from gossamer.errors import ValidationError
from gossamer.model import (
    KINDS,
    Gateway,
    Mesh,
    Resource,
    Route,
    Service,
    Workload,
    parse_manifest,
)
from gossamer.model.catalog import to_manifests
from gossamer.testing import strategies
from gossamer.types import Manifest

from .builders import errors_of, gateway, manifest, route, service, workload


def test_the_registry_holds_every_built_in_kind() -> None:
    assert {k: KINDS[k] for k in ("Mesh", "Service", "Workload", "Gateway", "Route")} == {
        "Mesh": Mesh,
        "Service": Service,
        "Workload": Workload,
        "Gateway": Gateway,
        "Route": Route,
    }


@pytest.mark.parametrize(
    ("m", "cls"),
    [
        (manifest("Mesh", "m"), Mesh),
        (service("s"), Service),
        (workload("w", "s"), Workload),
        (gateway("g"), Gateway),
        (route("r"), Route),
    ],
)
def test_parse_dispatches_on_kind(m: Manifest, cls: type[Resource]) -> None:
    assert type(parse_manifest(m)) is cls


@pytest.mark.parametrize("value", [None, [], "kind: Mesh", 3])
def test_a_resource_must_be_a_mapping(value: Any) -> None:
    assert errors_of(value, "x.yaml") == [
        "x.yaml: a resource must be a mapping with apiVersion, kind, metadata, spec"
    ]


@pytest.mark.parametrize(
    ("kind", "shown", "hint"),
    [
        ("Dog", "'Dog'", ""),
        ("service", "'service'", " did you mean 'Service'?"),
        (None, "None", ""),
        (3, "3", ""),
    ],
)
def test_unknown_kind_lists_the_valid_ones(kind: Any, shown: str, hint: str) -> None:
    m = manifest("x", "n")
    m["kind"] = kind
    valid = ", ".join(sorted(catalog.PUBLIC_KINDS))
    assert errors_of(m, "x.yaml") == [
        f"x.yaml: {kind} default/n: kind: unknown kind {shown}:{hint} valid kinds are {valid}"
    ]


def test_missing_kind() -> None:
    m = manifest("x", "n")
    del m["kind"]
    (error,) = errors_of(m)
    assert error.startswith("? default/n: kind: unknown kind None: valid kinds are ")


def test_the_resource_is_named_even_when_metadata_is_broken() -> None:
    assert errors_of({"apiVersion": "gossamer.dev/v1", "kind": "Mesh", "metadata": "m"}) == [
        "Mesh default/?: metadata: input should be a valid dictionary or instance of "
        "Metadata, not 'm'"
    ]


def test_the_resource_is_named_with_its_namespace() -> None:
    (error,) = errors_of(service("s", ("h", 0, "http"), namespace="shop"))
    assert error == "Service shop/s: spec.ports[0].port: must be 1..65535"


def test_no_source_means_no_source_prefix() -> None:
    (error,) = errors_of(service("s", ("h", 0, "http")))
    assert error.startswith("Service default/s: ")


def test_every_error_of_a_resource_is_reported_together() -> None:
    m = route(
        "r",
        rules=[
            {"destinations": [{"service": "A", "weight": 500}]},
            {"matches": [{"method": "get"}], "destinations": [{"service": "b"}], "timeout": "x"},
        ],
    )
    with pytest.raises(ValidationError) as info:
        parse_manifest(m, "r.yaml")
    paths = [e.path for e in info.value.errors]
    assert paths == [
        "spec.rules[0].destinations[0].service",
        "spec.rules[0].destinations[0].weight",
        "spec.rules[1].matches[0].method",
        "spec.rules[1].timeout",
    ]
    assert {e.source for e in info.value.errors} == {"r.yaml"}
    assert {e.resource for e in info.value.errors} == {"Route default/r"}
    assert str(info.value) == "\n".join(str(e) for e in info.value.errors)


def test_each_model_accepts_only_its_own_kind() -> None:
    with pytest.raises(pydantic.ValidationError):
        Mesh.model_validate(service("s"))


def test_internal_kinds_parse_but_are_not_offered() -> None:
    (error,) = errors_of(manifest("Nope", "p"))
    assert "Workload" in error
    assert "JoinToken" not in error and "Agent" not in error
    assert set(catalog.KINDS) >= catalog.INTERNAL_KINDS


def test_to_manifests() -> None:
    rs = [parse_manifest(service("s")), parse_manifest(manifest("Mesh", "m"))]
    assert to_manifests(rs) == [r.to_manifest() for r in rs]


# -- round trip --------------------------------------------------------------------------


@settings(max_examples=200)
@given(strategies.manifests)
def test_a_stored_manifest_parses_back_to_an_equal_model(m: Manifest) -> None:
    r = parse_manifest(m)
    stored = r.to_manifest()
    again = parse_manifest(stored)
    assert again == r
    assert again.to_manifest() == stored
    assert again.key == r.key


@given(strategies.manifests)
def test_the_stored_manifest_is_plain_json_data(m: Manifest) -> None:
    def plain(v: Any) -> bool:
        if isinstance(v, dict):
            return all(isinstance(k, str) and plain(x) for k, x in v.items())
        if isinstance(v, list):
            return all(plain(x) for x in v)
        return v is None or isinstance(v, str | int | float | bool)

    assert plain(parse_manifest(m).to_manifest())
