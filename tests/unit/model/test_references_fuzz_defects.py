"""A sidecar whose dependency would listen where the sidecar's inbound listener does:
Envoy refuses the pair ("has duplicate address ... as existing listener") after our
validation had accepted it. Found by the config fuzz (``bench/fuzz_config.py``)."""

from __future__ import annotations

from gossamer.model import ModelSnapshot, check_references, parse_yaml

MESH = """\
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: db}
spec:
  localAddress: %(local)s
  ports: [{name: sql, port: 5432}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {name: w0}
spec:
  service: db
  address: 127.0.0.1
  appAddress: 127.0.2.2
  sidecar: true
  ports: [{name: sql, port: 5432, appPort: 5432}]
  dependencies: [{service: db}]
"""


def _errors(local: str) -> list[str]:
    text = MESH % {"local": local}
    return [str(e) for e in check_references(ModelSnapshot().with_changes(parse_yaml(text)))]


def test_a_dependency_listening_on_the_sidecars_inbound_address_is_refused() -> None:
    assert _errors("127.0.0.1") == [
        "Workload default/w0: spec.dependencies[0]: listens on 127.0.0.1:5432, where the "
        "sidecar takes spec.ports[0]: set localAddress or localPort"
    ]


def test_a_dependency_on_another_address_is_fine() -> None:
    assert _errors("127.0.0.9") == []
