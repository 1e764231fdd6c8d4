"""The control plane refuses an AccessPolicy whose path prefix attribute Envoy could not
match, naming the field, and stores nothing (``controlplane.enforcement.check_prefix_names``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossamer.errors import ValidationError
from gossamer.model import parse_yaml
from gossamer.testing.controlplane import running_control_plane

from .ngac_mesh import policy

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_a_bad_prefix_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        bad = policy().replace('"svc:default/reviews:/admin"', '"svc:default/reviews://admin"')
        with pytest.raises(ValidationError) as refused:
            await app.plane.apply(parse_yaml(bad, "policy.yaml"))
        assert "spec.objectAttributes.svc:default/reviews://admin" in str(refused.value)
        assert await app.plane.list("AccessPolicy") == []
        await app.plane.apply(parse_yaml(policy(), "policy.yaml"))
        assert len(await app.plane.list("AccessPolicy")) == 1
