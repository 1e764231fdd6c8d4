from pathlib import Path

import pytest
import yaml

from gossamer.agent.config import load_config, parse_config, to_manifest
from gossamer.errors import ValidationError
from gossamer.model import parse_manifest
from gossamer.model.workload import Workload

GOOD = """
host: vm-3
address: 127.0.0.3
workloads:
  - name: catalog-1
    service: catalog
    appPort: 8080
    labels: {version: v2}
    zone: z1
    healthCheck: {type: http, path: /healthz, interval: 500ms, timeout: 200ms,
                  unhealthyThreshold: 3}
    dependencies:
      - service: reviews
  - name: ratings-1
    service: ratings
    appPort: 9090
    inboundPort: 15001
"""


def test_load_file_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "workloads.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.host == "vm-3" and config.address == "127.0.0.3"
    catalog, ratings = config.workloads
    assert catalog.appAddress == "127.0.0.1"
    assert catalog.healthCheck is not None and catalog.healthCheck.type == "http"
    assert catalog.healthCheck.interval.total_seconds() == 0.5
    assert catalog.healthCheck.unhealthyThreshold == 3
    assert catalog.inboundPort is None
    assert ratings.inboundPort == 15001
    # unset, not defaulted: a TrafficPolicy's check may apply (agent/policy_checks.py)
    assert ratings.healthCheck is None
    assert config.drainSeconds == 5


def test_manifest_is_a_valid_workload(tmp_path: Path) -> None:
    config = parse_config(yaml.safe_load(GOOD))
    manifest = to_manifest(
        config.workloads[0],
        host="vm-3",
        address="127.0.0.3",
        inbound_port=15000,
        health="unhealthy",
    )
    workload = parse_manifest(manifest)
    assert isinstance(workload, Workload)
    assert workload.spec.address == "127.0.0.3"
    assert workload.spec.ports[0].port == 15000 and workload.spec.ports[0].appPort == 8080
    assert workload.spec.health == "unhealthy"
    assert workload.spec.host == "vm-3"
    assert workload.zone == "z1" and workload.version == "v2"
    assert [d.service for d in workload.spec.dependencies] == ["reviews"]


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"workloads": [{"name": "a", "service": "s"}]}, "workloads[0].appPort", "required"),
        (
            {"workloads": [{"name": "A!", "service": "s", "appPort": 1}]},
            "workloads[0].name",
            "not a valid name",
        ),
        (
            {"workloads": [{"name": "a", "service": "s", "appPort": 70000}]},
            "workloads[0].appPort",
            "1..65535",
        ),
        (
            {
                "workloads": [
                    {"name": "a", "service": "s", "appPort": 1, "healthCheck": {"type": "udp"}}
                ]
            },
            "workloads[0].healthCheck.type",
            "'http'",
        ),
        (
            {
                "workloads": [
                    {
                        "name": "a",
                        "service": "s",
                        "appPort": 1,
                        "healthCheck": {"interval": "1s", "timeout": "2s"},
                    }
                ]
            },
            "workloads[0].healthCheck",
            "timeout must not be longer",
        ),
        (
            {
                "workloads": [
                    {
                        "name": "a",
                        "service": "s",
                        "appPort": 1,
                        "labels": {"gossamer.dev/agent": "x"},
                    }
                ]
            },
            "workloads[0]",
            "set by the control plane",
        ),
        (
            {
                "workloads": [
                    {"name": "a", "service": "s", "appPort": 1},
                    {"name": "a", "service": "t", "appPort": 2},
                ]
            },
            "",
            "listed twice",
        ),
        ({"adress": "127.0.0.3"}, "adress", "unknown field"),
        ({"address": "localhost"}, "address", "not an IP address"),
    ],
)
def test_errors_name_the_field(data: object, path: str, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_config(data, "w.yaml")
    errors = info.value.errors
    assert any(e.path == path and words in e.message for e in errors), errors
    assert all(e.source == "w.yaml" for e in errors)


def test_not_a_mapping_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must be a mapping"):
        parse_config([1, 2])
    path = tmp_path / "bad.yaml"
    path.write_text("workloads: [\n")
    with pytest.raises(ValidationError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ValidationError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
