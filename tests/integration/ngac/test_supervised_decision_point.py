"""The control plane's own decision point (``--authz-service auto``, the default): with no
``gossamer authz serve`` started by anyone else, a JWT end user through real sidecars
(strict mTLS) is decided by the control plane's supervised child; a killed child is
restarted and decides again; stopping the control plane leaves no child behind.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from tests.integration.agent.mtls_mesh import two_hosts, wait_served

from gossamer.envoy.process import pid_alive
from gossamer.polling import wait_until
from gossamer.server.authz_child import TOKEN_FILE
from gossamer.testing.controlplane import apply_yaml

from .ngac_mesh import manifests
from .test_end_users_mesh import IDP, ISSUER, _get, _mesh_with_issuer, _policy, _status

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(180),
]


async def test_the_supervised_child_decides_end_users(tmp_path: Path) -> None:
    pids: list[int] = []
    async with two_hosts(tmp_path, manifests("enforce") + "---" + _policy()) as mesh:
        await wait_served(mesh)
        child = mesh.app.authz_child
        assert child is not None and child.process is None  # no issuer: nothing needs it
        await apply_yaml(mesh.app, _mesh_with_issuer())
        bob = IDP.token("bob", "shop", claims={"groups": ["customers"]})
        await wait_until(
            lambda: _status(mesh, "/api/orders/7", bob, 200),
            timeout=30,
            what="bob allowed under /api/orders by the supervised decision point",
        )
        denied = await _get(mesh, "/reviews/1", bob)
        assert denied.status_code == 403, denied.text
        assert f"jwt:{ISSUER}#bob" in denied.text  # the decision point's reason, not Envoy's
        assert child.process is not None and child.starts == 1
        token_file = mesh.app.settings.data_dir / TOKEN_FILE
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        assert token_file.read_text().strip() not in " ".join(child.argv())

        # killed: restarted (with back-off) and deciding again
        pids.append(child.process.pid)
        os.kill(child.process.pid, signal.SIGKILL)
        await wait_until(
            lambda: _restarted(child), timeout=30, what="the decision point to be restarted"
        )
        pids.append(child.process.pid)
        await wait_until(
            lambda: _status(mesh, "/api/orders/7", bob, 200),
            timeout=30,
            what="the restarted decision point to allow bob",
        )
        assert (await _get(mesh, "/reviews/1", bob)).status_code == 403
    # the control plane stopped: no decision point left running
    assert not any(pid_alive(p) for p in pids)


async def _restarted(child) -> bool:  # type: ignore[no-untyped-def]
    return child.starts >= 2 and child.process is not None and child.process.running
