"""``jwks.caFile`` (the CA of an identity provider whose ``jwks.uri`` the control plane
fetches) is read by the CLI relative to the manifest and sent as ``jwks.ca``; a file that
is missing or holds no certificate is an error naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit.model.test_external_service import ca_pem as _pem

from gossamer.cli.yaml_files import load_files
from gossamer.errors import ValidationError
from gossamer.model.mesh import Mesh

MANIFEST = """
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {name: default}
spec:
  authentication:
    jwt:
    - issuer: https://idp.example
      jwks: {uri: "https://idp.example/jwks.json", caFile: certs/idp-ca.pem}
"""


def test_the_ca_file_is_read_relative_to_the_manifest(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    pem = _pem()
    (tmp_path / "certs" / "idp-ca.pem").write_text(pem)
    (tmp_path / "mesh.yaml").write_text(MANIFEST)
    (mesh,) = load_files([tmp_path / "mesh.yaml"]).resources
    assert isinstance(mesh, Mesh)
    jwks = mesh.spec.authentication.jwt[0].jwks
    assert jwks.ca == pem and jwks.caFile is None and jwks.uri is not None
    assert "caFile" not in str(mesh.to_manifest())


def test_missing_or_bad_ca_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "mesh.yaml").write_text(MANIFEST)
    with pytest.raises(ValidationError) as info:
        load_files([tmp_path / "mesh.yaml"])
    (error,) = [str(e) for e in info.value.errors]
    assert "spec.authentication.jwt[0].jwks.caFile: cannot read" in error
    assert "No such file" in error
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "idp-ca.pem").write_text("not a certificate")
    with pytest.raises(ValidationError) as info:
        load_files([tmp_path / "mesh.yaml"])
    (error,) = [str(e) for e in info.value.errors]
    assert "spec.authentication.jwt[0].jwks.ca: is not PEM" in error, error
    assert "(read from a jwks.caFile)" in error
