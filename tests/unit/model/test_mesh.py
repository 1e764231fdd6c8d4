"""``Mesh``: defaults and field rules."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gossamer.model import Mesh, parse_manifest, parse_yaml

from .builders import errors_of, manifest


def test_a_mesh_without_spec_gets_every_default() -> None:
    mesh = parse_manifest(manifest("Mesh", "default"))
    assert isinstance(mesh, Mesh)
    spec = mesh.spec
    assert spec.trustDomain == "gossamer.local"
    assert spec.underscoreHeaders == "reject"
    assert spec.debounceMs == 50
    d = spec.defaults
    assert d.requestTimeout == timedelta(seconds=30)
    assert d.idleTimeout == timedelta(seconds=300)
    assert d.connectTimeout == timedelta(seconds=5)
    assert d.streamIdleTimeout == timedelta(seconds=300)
    assert d.drainTimeout == timedelta(seconds=5)


def test_default_durations_are_stored_as_text() -> None:
    spec = parse_manifest(manifest("Mesh", "default")).to_manifest()["spec"]
    assert spec == {
        "trustDomain": "gossamer.local",
        "defaults": {
            "requestTimeout": "30s",
            "idleTimeout": "300s",
            "connectTimeout": "5s",
            "streamIdleTimeout": "300s",
            "drainTimeout": "5s",
            "retries": {
                "attempts": 2,
                "retryOn": [
                    "connect-failure",
                    "refused-stream",
                    "unavailable",
                    "cancelled",
                    "retriable-status-codes",
                ],
                "statusCodes": [503],
            },
        },
        "mtls": {"mode": "permissive", "certificateTTL": "3600s"},
        "authorization": {"mode": "off"},
        "authentication": {"jwt": []},
        "underscoreHeaders": "reject",
        "rateLimit": {"failureMode": "open", "timeout": "100ms"},
        "tracing": {"sampling": 0.0},
        "telemetry": {"requests": "stats"},
        "debounceMs": 50,
    }


def test_partial_defaults_keep_the_others() -> None:
    mesh = parse_manifest(manifest("Mesh", "m", {"defaults": {"connectTimeout": "250ms"}}))
    assert isinstance(mesh, Mesh)
    assert mesh.spec.defaults.connectTimeout == timedelta(milliseconds=250)
    assert mesh.spec.defaults.requestTimeout == timedelta(seconds=30)


@pytest.mark.parametrize("mode", ["reject", "drop", "allow"])
def test_underscore_header_modes(mode: str) -> None:
    mesh = parse_manifest(manifest("Mesh", "m", {"underscoreHeaders": mode}))
    assert isinstance(mesh, Mesh)
    assert mesh.spec.underscoreHeaders == mode


def test_bad_underscore_header_mode_lists_the_valid_ones() -> None:
    assert errors_of(manifest("Mesh", "m", {"underscoreHeaders": "keep"})) == [
        "Mesh default/m: spec.underscoreHeaders: input should be 'reject', 'drop' or 'allow'"
    ]


def test_requests_are_counted_from_stats_unless_logs_are_asked_for() -> None:
    mesh = parse_manifest(manifest("Mesh", "m"))
    assert isinstance(mesh, Mesh) and mesh.spec.telemetry.requests == "stats"
    mesh = parse_manifest(manifest("Mesh", "m", {"telemetry": {"requests": "logs"}}))
    assert isinstance(mesh, Mesh) and mesh.spec.telemetry.requests == "logs"


@pytest.mark.parametrize(
    ("telemetry", "error"),
    [
        ({"requests": "traces"}, "spec.telemetry.requests: input should be 'stats' or 'logs'"),
        ({"request": "logs"}, "spec.telemetry.request: unknown field: did you mean 'requests'?"),
    ],
)
def test_a_bad_telemetry_setting_names_the_field_and_the_valid_values(
    telemetry: dict[str, str], error: str
) -> None:
    assert errors_of(manifest("Mesh", "m", {"telemetry": telemetry})) == [
        f"Mesh default/m: {error}"
    ]


@pytest.mark.parametrize("value", [0, 50, 10_000])
def test_debounce_in_range(value: int) -> None:
    mesh = parse_manifest(manifest("Mesh", "m", {"debounceMs": value}))
    assert isinstance(mesh, Mesh)
    assert mesh.spec.debounceMs == value


@pytest.mark.parametrize("value", [-1, 10_001])
def test_debounce_out_of_range(value: int) -> None:
    assert errors_of(manifest("Mesh", "m", {"debounceMs": value})) == [
        "Mesh default/m: spec.debounceMs: must be 0..10000"
    ]


def test_every_bad_field_is_reported_at_once() -> None:
    spec: dict[str, Any] = {
        "debounceMs": -1,
        "underscoreHeaders": "x",
        "defaults": {"requestTimeout": "1x", "typo": 1},
    }
    assert sorted(errors_of(manifest("Mesh", "m", spec), "mesh.yaml")) == [
        "mesh.yaml: Mesh default/m: spec.debounceMs: must be 0..10000",
        "mesh.yaml: Mesh default/m: spec.defaults.requestTimeout: '1x' is not a duration: "
        "write e.g. '250ms', '5s', '2m' or '1h'",
        "mesh.yaml: Mesh default/m: spec.defaults.typo: unknown field: "
        "remove it or check its spelling",
        "mesh.yaml: Mesh default/m: spec.underscoreHeaders: input should be "
        "'reject', 'drop' or 'allow'",
    ]


@pytest.mark.parametrize("value", ["", "a/b", "Gossamer Local"])
def test_trust_domain_is_validated(value: str) -> None:
    errors_of(manifest("Mesh", "m", {"trustDomain": value}))


def test_mtls_defaults_to_permissive_with_hour_long_certificates() -> None:
    mesh = parse_manifest(manifest("Mesh", "m"))
    assert isinstance(mesh, Mesh)
    assert mesh.spec.mtls.mode == "permissive"
    assert mesh.spec.mtls.certificateTTL == timedelta(hours=1)


@pytest.mark.parametrize("mode", ["strict", "permissive", "off"])
def test_mtls_modes(mode: str) -> None:
    mesh = parse_manifest(manifest("Mesh", "m", {"mtls": {"mode": mode}}))
    assert isinstance(mesh, Mesh)
    assert mesh.spec.mtls.mode == mode


def test_bad_mtls_mode_lists_the_valid_ones() -> None:
    assert errors_of(manifest("Mesh", "m", {"mtls": {"mode": "on"}})) == [
        "Mesh default/m: spec.mtls.mode: input should be 'strict', 'permissive' or 'off'"
    ]


@pytest.mark.parametrize(
    ("text", "value"),
    [("1m", timedelta(minutes=1)), ("90s", timedelta(seconds=90)), ("24h", timedelta(hours=24))],
)
def test_certificate_ttl_in_range(text: str, value: timedelta) -> None:
    mesh = parse_manifest(manifest("Mesh", "m", {"mtls": {"certificateTTL": text}}))
    assert isinstance(mesh, Mesh)
    assert mesh.spec.mtls.certificateTTL == value


@pytest.mark.parametrize("text", ["59s", "25h", "0s"])
def test_certificate_ttl_out_of_range_names_the_range(text: str) -> None:
    assert errors_of(manifest("Mesh", "m", {"mtls": {"certificateTTL": text}})) == [
        "Mesh default/m: spec.mtls.certificateTTL: must be 1m..24h"
    ]


def test_certificate_ttl_must_be_a_duration() -> None:
    assert errors_of(manifest("Mesh", "m", {"mtls": {"certificateTTL": "1d"}})) == [
        "Mesh default/m: spec.mtls.certificateTTL: '1d' is not a duration: "
        "write e.g. '250ms', '5s', '2m' or '1h'"
    ]


def test_unknown_mtls_field_is_an_error() -> None:
    assert errors_of(manifest("Mesh", "m", {"mtls": {"ttl": "1h"}})) == [
        "Mesh default/m: spec.mtls.ttl: unknown field: remove it or check its spelling"
    ]


def test_an_unquoted_off_in_yaml_is_the_off_mode() -> None:
    """YAML 1.1 reads ``off`` as false; users write ``mode: off`` as the docs do."""
    [mesh] = parse_yaml(
        "apiVersion: gossamer.dev/v1\nkind: Mesh\nmetadata: {name: m}\nspec: {mtls: {mode: off}}\n",
        "mesh.yaml",
    )
    assert isinstance(mesh, Mesh)
    assert mesh.spec.mtls.mode == "off"
    assert mesh.to_manifest()["spec"]["mtls"]["mode"] == "off"
    assert errors_of(manifest("Mesh", "m", {"mtls": {"mode": True}})) == [
        "Mesh default/m: spec.mtls.mode: input should be 'strict', 'permissive' or 'off'"
    ]
