"""``Mesh.spec.authentication.jwt[].jwks.uri`` (``model.authentication``): https (http only
to a loopback host), no credentials or fragment; exactly one of inline, file and uri;
``ca``/``caFile``/``refreshInterval`` only with a uri, ``refreshInterval`` 1s..24h (default
5m); a ``caFile`` that reached the control plane unread is refused naming the field. Each
error names the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gossamer.errors import ValidationError
from gossamer.model import ModelSnapshot, check_references, parse_manifest
from gossamer.model.mesh import Mesh
from gossamer.types import API_VERSION

from .test_external_service import ca_pem as _pem


def _mesh(jwks: dict[str, Any]) -> Mesh:
    mesh = parse_manifest(
        {
            "apiVersion": API_VERSION,
            "kind": "Mesh",
            "metadata": {"name": "default"},
            "spec": {"authentication": {"jwt": [{"issuer": "https://idp", "jwks": jwks}]}},
        }
    )
    assert isinstance(mesh, Mesh)
    return mesh


def _refused(jwks: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as e:
        _mesh(jwks)
    (error,) = [str(x) for x in e.value.errors]
    assert "spec.authentication.jwt[0].jwks" in error, error
    return error


@pytest.mark.parametrize(
    "uri",
    [
        "https://idp.example/.well-known/jwks.json",
        "https://127.0.0.9:8443/keys",
        "http://127.0.0.1:8080/jwks",
        "http://localhost/jwks",
        "http://[::1]:9000/jwks",
    ],
)
def test_https_anywhere_and_http_on_loopback_are_taken(uri: str) -> None:
    jwks = _mesh({"uri": uri}).spec.authentication.jwt[0].jwks
    assert jwks.uri == uri and jwks.refresh == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("http://idp.example/jwks", "http is taken for a loopback host only"),
        ("http://10.0.0.5/jwks", "http is taken for a loopback host only"),
        ("ftp://idp.example/jwks", "not an https:// URL"),
        ("idp.example/jwks", "not an https:// URL"),
        ("https://user:pw@idp.example/jwks", "holds credentials"),
        ("https://idp.example/jwks#keys", "fragment"),
        ("https://idp.example:99999/jwks", "invalid port"),
    ],
)
def test_other_uris_are_refused_saying_why(uri: str, says: str) -> None:
    assert says in _refused({"uri": uri})


def test_one_source_and_the_uri_options_only_with_a_uri() -> None:
    both = _refused({"uri": "https://idp/jwks", "file": "keys.json"})
    assert "exactly one of inline" in both and "uri" in both
    assert "go with uri only" in _refused({"file": "keys.json", "refreshInterval": "1m"})
    assert "go with uri only" in _refused({"file": "keys.json", "caFile": "ca.pem"})
    assert "not both" in _refused({"uri": "https://idp/jwks", "ca": _pem(), "caFile": "ca.pem"})
    assert "is not PEM" in _refused({"uri": "https://idp/jwks", "ca": "hello"})
    assert "1s..24h" in _refused({"uri": "https://idp/jwks", "refreshInterval": "500ms"})
    assert "1s..24h" in _refused({"uri": "https://idp/jwks", "refreshInterval": "25h"})
    jwks = _mesh({"uri": "https://idp/jwks", "refreshInterval": "30s", "ca": _pem()})
    assert jwks.spec.authentication.jwt[0].jwks.refresh == timedelta(seconds=30)


def test_an_unread_ca_file_is_refused_by_the_control_plane() -> None:
    mesh = _mesh({"uri": "https://idp/jwks", "caFile": "ca.pem"})
    errors = check_references(ModelSnapshot().with_changes([mesh]))
    assert [e.path for e in errors] == ["spec.authentication.jwt[0].jwks.caFile"]
    assert "sent as jwks.ca" in errors[0].message
