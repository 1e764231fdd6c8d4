"""Field types shared by every kind (names, labels, durations, addresses, ranges) and the
envelope (apiVersion, metadata, key, to_manifest)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gossamer.model import Service, parse_manifest
from gossamer.model.base import Duration, IPAddress, Labels, LoopbackAddress, Name, Port
from gossamer.testing.mesh import service as mesh_service
from gossamer.types import API_VERSION, ResourceKey

from .builders import errors_of, manifest, service

NAME_RULE = (
    "is not a valid name: use 1-63 lowercase letters, digits and '-', "
    "starting and ending with a letter or digit"
)
DURATION_RULE = "is not a duration: write e.g. '250ms', '5s', '2m' or '1h'"

names: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(Name)
labels: pydantic.TypeAdapter[dict[str, str]] = pydantic.TypeAdapter(Labels)
durations: pydantic.TypeAdapter[timedelta] = pydantic.TypeAdapter(Duration)
ips: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(IPAddress)
loopbacks: pydantic.TypeAdapter[str] = pydantic.TypeAdapter(LoopbackAddress)
ports: pydantic.TypeAdapter[int] = pydantic.TypeAdapter(Port)


# -- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["a", "0", "web", "a-b", "v2", "a1-b2-c3", "x" * 63])
def test_valid_names(value: str) -> None:
    assert names.validate_python(value) == value


@pytest.mark.parametrize("value", ["", "Web", "-a", "a-", "a_b", "a.b", "a b", "é", "x" * 64, " a"])
def test_invalid_names_are_rejected_with_the_rule(value: str) -> None:
    errors = errors_of(manifest("Mesh", value))
    assert errors == [f"Mesh default/{value}: metadata.name: {value!r} {NAME_RULE}"]


def test_namespace_follows_the_name_rule() -> None:
    errors = errors_of(manifest("Mesh", "m", namespace="Prod"), "m.yaml")
    assert errors == [f"m.yaml: Mesh Prod/m: metadata.namespace: 'Prod' {NAME_RULE}"]


def test_name_with_trailing_newline_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        names.validate_python("web\n")


# -- labels ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["app", "A", "a_b", "a.b", "a-b", "app.kubernetes.io/name", "x/y", "k" * 63]
)
def test_valid_label_keys(key: str) -> None:
    assert labels.validate_python({key: "v"}) == {key: "v"}


@pytest.mark.parametrize("key", ["", "-a", "a-", "a b", "Ex/a", "a/b/c", "_a", "k" * 254])
def test_invalid_label_keys_are_rejected(key: str) -> None:
    errors = errors_of(manifest("Mesh", "m", labels={key: "v"}))
    assert errors == [
        f"Mesh default/m: metadata.labels: label key {key!r} is not valid: "
        "use letters, digits, '-', '_', '.'"
    ]


def test_label_values_must_be_strings() -> None:
    errors = errors_of(manifest("Mesh", "m", labels={"version": 2}))
    assert errors == [
        "Mesh default/m: metadata.labels.version: input should be a valid string, not 2"
    ]


def test_label_key_with_trailing_newline_is_rejected() -> None:
    with pytest.raises(pydantic.ValidationError):
        labels.validate_python({"app\n": "v"})


# -- durations ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", timedelta(milliseconds=250)),
        ("0ms", timedelta(0)),
        ("5s", timedelta(seconds=5)),
        ("1.5s", timedelta(milliseconds=1500)),
        ("2m", timedelta(minutes=2)),
        ("0.5m", timedelta(seconds=30)),
        ("1h", timedelta(hours=1)),
        (" 3s ", timedelta(seconds=3)),
        (0, timedelta(0)),
        (7, timedelta(seconds=7)),
        (0.25, timedelta(milliseconds=250)),
        (timedelta(seconds=9), timedelta(seconds=9)),
    ],
)
def test_durations_parse(text: Any, expected: timedelta) -> None:
    assert durations.validate_python(text) == expected


@pytest.mark.parametrize(
    "value", ["5", "1m30s", "-1s", "1 s", "1S", "s", "1.s", ".5s", "1d", "", -1, -0.5, True, [1]]
)
def test_bad_durations_say_how_to_write_one(value: Any) -> None:
    errors = errors_of(manifest("Mesh", "m", {"defaults": {"idleTimeout": value}}))
    assert len(errors) == 1
    assert errors[0].startswith("Mesh default/m: spec.defaults.idleTimeout: ")
    assert errors[0].endswith(DURATION_RULE)


def test_bad_duration_error_quotes_the_value() -> None:
    errors = errors_of(manifest("Mesh", "m", {"defaults": {"idleTimeout": "1m30s"}}))
    assert errors == [f"Mesh default/m: spec.defaults.idleTimeout: '1m30s' {DURATION_RULE}"]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=5), "5s"),
        (timedelta(minutes=2), "120s"),
        (timedelta(hours=1), "3600s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(milliseconds=1500), "1500ms"),
    ],
)
def test_durations_serialize_as_seconds_or_milliseconds(value: timedelta, text: str) -> None:
    assert durations.dump_python(value, mode="json") == text


@given(st.integers(min_value=0, max_value=10**9))
def test_whole_millisecond_durations_round_trip(ms: int) -> None:
    value = timedelta(milliseconds=ms)
    assert durations.validate_python(durations.dump_python(value, mode="json")) == value


@pytest.mark.parametrize("text", ["0.5ms", "1.0005s", "0.0001s"])
def test_sub_millisecond_durations_do_not_silently_change(text: str) -> None:
    try:
        value = durations.validate_python(text)
    except pydantic.ValidationError:
        return  # rejecting is a fine fix
    assert durations.validate_python(durations.dump_python(value, mode="json")) == value


@pytest.mark.parametrize("value", ["99999999999999h", float("inf")])
def test_huge_durations_are_validation_errors(value: Any) -> None:
    errors_of(manifest("Mesh", "m", {"defaults": {"idleTimeout": value}}))


# -- addresses and ports -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "normal"),
    [
        ("127.0.0.2", "127.0.0.2"),
        ("10.1.2.3", "10.1.2.3"),
        ("::1", "::1"),
        ("0:0::0001", "::1"),
        ("FE80::1", "fe80::1"),
    ],
)
def test_ip_addresses_are_normalized(value: str, normal: str) -> None:
    assert ips.validate_python(value) == normal


@pytest.mark.parametrize("value", ["localhost", "1.2.3", "127.0.0.256", "127.0.0.1/32", ""])
def test_bad_ip_addresses_are_rejected(value: str) -> None:
    errors = errors_of(manifest("Gateway", "g", {"port": 80, "address": value}))
    assert errors == [
        f"Gateway default/g: spec.address: {value!r} is not an IP address: write e.g. '127.0.0.2'"
    ]


@pytest.mark.parametrize("value", ["127.0.0.1", "127.255.255.254", "127.128.0.1", "::1"])
def test_loopback_addresses(value: str) -> None:
    assert loopbacks.validate_python(value) == value


@pytest.mark.parametrize("value", ["10.0.0.1", "128.0.0.1", "::2", "0.0.0.0"])
def test_non_loopback_addresses_are_rejected(value: str) -> None:
    errors = errors_of(service("s", localAddress=value))
    assert errors == [
        f"Service default/s: spec.localAddress: {value!r} is not a loopback address: "
        "use one in 127.0.0.0/8 or ::1"
    ]


@pytest.mark.parametrize("value", [1, 80, 65535])
def test_valid_ports(value: int) -> None:
    assert ports.validate_python(value) == value


@pytest.mark.parametrize("value", [0, -1, 65536])
def test_ports_out_of_range(value: int) -> None:
    errors = errors_of(service("s", ("http", value, "http")))
    assert errors == ["Service default/s: spec.ports[0].port: must be 1..65535"]


def test_port_must_be_an_integer() -> None:
    errors = errors_of(service("s", ("http", "eighty", "http")))  # type: ignore[arg-type]
    assert errors == [
        "Service default/s: spec.ports[0].port: input should be a valid integer, not 'eighty'"
    ]


def test_boolean_is_not_a_port() -> None:
    with pytest.raises(pydantic.ValidationError):
        ports.validate_python(True)


# -- envelope ----------------------------------------------------------------------------


def test_api_version_must_be_gossamer() -> None:
    m = manifest("Mesh", "m")
    m["apiVersion"] = "v1"
    assert errors_of(m) == [f"Mesh default/m: apiVersion: must be {API_VERSION!r}"]


def test_envelope_fields_are_required() -> None:
    errors = errors_of({"kind": "Mesh"})
    assert errors == [
        "Mesh default/?: apiVersion: required field is missing",
        "Mesh default/?: metadata: required field is missing",
    ]


def test_metadata_name_is_required_and_unknown_metadata_is_rejected() -> None:
    m = manifest("Mesh", "m", uid="123")
    del m["metadata"]["name"]
    assert errors_of(m) == [
        "Mesh default/?: metadata.name: required field is missing",
        "Mesh default/?: metadata.uid: unknown field: remove it or check its spelling",
    ]


def test_metadata_defaults() -> None:
    r = parse_manifest(service("web"))
    assert r.metadata.namespace == "default"
    assert r.metadata.labels == {}
    assert r.metadata.annotations == {}


def test_annotations_take_any_string_key() -> None:
    r = parse_manifest(manifest("Mesh", "m", annotations={"Any Key!": "x"}))
    assert r.metadata.annotations == {"Any Key!": "x"}


def test_key_and_ref() -> None:
    r = parse_manifest(service("web", namespace="shop"))
    assert r.key == ResourceKey("Service", "shop", "web")
    assert str(r.key) == "Service shop/web"
    assert r.ref == ("shop", "web")


def test_to_manifest_fills_in_defaults_and_drops_unset_optionals() -> None:
    r = parse_manifest(service("web"))
    assert r.to_manifest() == {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default", "labels": {}, "annotations": {}},
        "spec": {"ports": [{"name": "http", "port": 80, "protocol": "http"}]},
    }


def test_resources_are_immutable() -> None:
    r = parse_manifest(service("web"))
    assert isinstance(r, Service)
    with pytest.raises(pydantic.ValidationError):
        r.spec.localAddress = "127.0.0.9"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        r.metadata.name = "other"  # type: ignore[misc]


def test_instances_given_the_same_fields_share_one_set_and_a_copy_gets_its_own() -> None:
    """Frozen models keep the set of fields they were given (pydantic's
    ``model_fields_set``) shared with every instance given the same ones: 70 MB of a 10k
    services model. What it says is unchanged, and a copy with updates does not change it
    for the others."""
    a, b = parse_manifest(mesh_service("a", 80)), parse_manifest(mesh_service("b", 81))
    assert a.model_fields_set is b.model_fields_set
    assert a.model_fields_set == {"apiVersion", "kind", "metadata", "spec"}
    assert a.metadata.model_fields_set == {"name"}
    changed = a.model_copy(update={"kind": "Service"})
    assert changed.model_fields_set == {"apiVersion", "kind", "metadata", "spec"}
    bare = a.metadata.model_copy(update={"namespace": "other"})
    assert bare.model_fields_set == {"name", "namespace"}
    assert a.metadata.model_fields_set == {"name"} == b.metadata.model_fields_set
    assert a == parse_manifest(mesh_service("a", 80)) and a != b
