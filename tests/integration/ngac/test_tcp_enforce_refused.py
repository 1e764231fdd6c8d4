"""``enforce`` on a service with a TCP port is refused by a real control plane on apply,
naming the field, and nothing is stored (its sidecar's RBAC is per HTTP route: a TCP port
would let every caller in)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossamer.errors import ValidationError
from gossamer.testing.controlplane import apply_yaml, running_control_plane

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(120)]

DB = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: db}
spec: {ports: [{name: tcp, port: 5432, protocol: tcp}]%s}
"""
MESH = """
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {name: default}
spec: {authorization: {mode: %s}}
"""


async def test_enforce_on_a_tcp_service_is_refused(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        revision = await apply_yaml(app, DB % "", wait=False)
        with pytest.raises(ValidationError) as refused:
            await apply_yaml(app, DB % ", authorization: {mode: enforce}", wait=False)
        text = str(refused.value)
        assert "Service default/db: spec.authorization.mode" in text, text
        assert "'tcp' (5432)" in text
        with pytest.raises(ValidationError) as refused:
            await apply_yaml(app, MESH % "enforce", wait=False)
        assert "Mesh default/default: spec.authorization.mode" in str(refused.value)
        assert app.plane.model is not None and app.plane.model.revision == revision
        # db opting out makes the mesh-wide enforce acceptable
        await apply_yaml(app, DB % ", authorization: {mode: off}", wait=False)
        await apply_yaml(app, MESH % "enforce", wait=False)
