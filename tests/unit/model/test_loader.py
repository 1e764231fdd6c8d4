"""Reading resources from YAML text: several documents, every error at once, nothing
half-read (files: tests/unit/cli/test_yaml_files.py)."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gossamer.errors import ValidationError
from gossamer.model import Mesh, Service, Workload, parse_manifest, parse_yaml
from gossamer.testing import strategies
from gossamer.types import Manifest, ResourceKey

SERVICE = """\
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: %s}
spec:
  ports: [{name: http, port: 80}]
"""
MESH = "apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {name: default}\n"


def yaml_errors(text: str, source: str = "in.yaml") -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_yaml(text, source)
    return [str(e) for e in info.value.errors]


# -- parse_yaml --------------------------------------------------------------------------


def test_several_documents_in_order() -> None:
    text = "\n---\n".join([MESH, SERVICE % "a", SERVICE % "b"])
    rs = parse_yaml(text)
    assert [r.key for r in rs] == [
        ResourceKey("Mesh", "default", "default"),
        ResourceKey("Service", "default", "a"),
        ResourceKey("Service", "default", "b"),
    ]
    assert isinstance(rs[0], Mesh)
    assert isinstance(rs[1], Service)


def test_empty_documents_are_skipped() -> None:
    text = "---\n" + SERVICE % "a" + "---\n---\n# just a comment\n---\n"
    assert [r.metadata.name for r in parse_yaml(text)] == ["a"]


@pytest.mark.parametrize("text", ["", "\n", "# nothing\n", "---\n---\n"])
def test_no_documents_is_no_resources(text: str) -> None:
    assert parse_yaml(text) == []


def test_bad_yaml_names_the_line() -> None:
    text = SERVICE % "a" + "---\nkind: Service\nmetadata: {name: b\nspec: 1\n"
    (error,) = yaml_errors(text, "shop.yaml")
    assert error.startswith("shop.yaml: line 9: not valid YAML: ")


def test_bad_yaml_rejects_the_good_documents_too() -> None:
    with pytest.raises(ValidationError):
        parse_yaml(SERVICE % "a" + "---\n: : :\n  - [\n")


def test_every_bad_document_is_reported() -> None:
    text = "\n---\n".join(
        [SERVICE % "ok", SERVICE % "Bad", "- a list\n", "kind: Dog\nmetadata: {name: d}\n"]
    )
    errors = yaml_errors(text, "all.yaml")
    assert len(errors) == 3
    assert errors[0].startswith("all.yaml: Service default/Bad: metadata.name: 'Bad' is not")
    assert errors[1] == (
        "all.yaml: document at line 15: a resource must be a mapping with apiVersion, kind, "
        "metadata, spec"
    )
    assert errors[2].startswith("all.yaml: Dog default/d: kind: unknown kind 'Dog'")


def test_a_resource_defined_twice_in_one_input() -> None:
    text = "\n---\n".join([SERVICE % "a", SERVICE % "b", SERVICE % "a"])
    assert yaml_errors(text, "dup.yaml") == [
        "dup.yaml: Service default/a: defined twice in the same input"
    ]


def test_the_same_name_in_other_namespaces_or_kinds_is_not_a_duplicate() -> None:
    other_ns = (SERVICE % "a").replace("{name: a}", "{name: a, namespace: shop}")
    workload = (
        "apiVersion: gossamer.dev/v1\nkind: Workload\nmetadata: {name: a}\n"
        "spec: {service: a, address: 127.0.0.2, ports: [{port: 1, appPort: 2}]}\n"
    )
    rs = parse_yaml("\n---\n".join([SERVICE % "a", other_ns, workload]))
    assert len(rs) == 3
    assert isinstance(rs[2], Workload)


def test_yaml_only_reads_plain_data() -> None:
    text = "!!python/object/apply:os.system ['true']\n"
    (error,) = yaml_errors(text)
    assert "not valid YAML" in error


def test_retry_on_survives_yaml_1_1() -> None:
    text = """\
apiVersion: gossamer.dev/v1
kind: Route
metadata: {name: r}
spec:
  service: a
  rules:
    - destinations: [{service: a}]
      retries: {retryOn: [5xx, reset]}
"""
    (r,) = parse_yaml(text)
    assert r.to_manifest()["spec"]["rules"][0]["retries"]["retryOn"] == ["5xx", "reset"]


def test_a_key_written_twice_in_one_mapping_is_an_error() -> None:
    text = SERVICE % "a" + "spec:\n  ports: [{name: grpc, port: 81}]\n"
    yaml_errors(text)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(strategies.manifests, min_size=1, max_size=4))
def test_dumped_yaml_loads_back_to_equal_models(ms: list[Manifest]) -> None:
    parsed = {parse_manifest(m).key: parse_manifest(m) for m in ms}  # last one wins
    text = yaml.safe_dump_all([r.to_manifest() for r in parsed.values()])
    assert parse_yaml(text) == list(parsed.values())
