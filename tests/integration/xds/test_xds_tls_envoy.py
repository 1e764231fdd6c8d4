"""A real agent-run Envoy gets its config over mTLS xDS from a control plane that refuses
anything else (``--xds-tls required``): its bootstrap's ``gossamer-xds`` cluster takes the
workload certificate and trust bundle from its agent over SDS, checks the control plane's
SPIFFE id, and the request it routes through the config it got is answered."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.integration.agent.agents import GOSSAMER, AgentHandle, agents

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

NODE = "sidecar~default~web-1"


class MtlsAgent(AgentHandle):
    """An agent whose sidecars reach xDS at the control plane's mTLS address."""

    async def start(self) -> None:
        config = self.write_config()
        self.runs += 1
        tls = self.app.xds_tls_addr
        self.process = ManagedProcess(
            [
                GOSSAMER,
                "agent",
                "run",
                "--state-dir",
                str(self.state_dir),
                "-f",
                str(config),
                "--xds-tls",
                f"{tls[0]}:{tls[1]}",
            ],
            log_path=self.state_dir.parent / f"{self.host}-agent-{self.runs}.log",
            name=f"agent {self.host}",
        )
        await self.process.start()


async def test_an_agent_run_envoy_gets_its_config_over_mtls_xds(tmp_path: Path) -> None:
    async with (
        running_control_plane(tmp_path / "cp", xds_tls="required") as app,
        HttpBackend("web-1", host="127.0.0.3") as backend,
    ):
        assert app.xds_addr == ("", 0)
        port = free_port("127.0.0.3")
        await apply_yaml(
            app,
            """
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {name: default}
spec: {trustDomain: shop.local}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 8080}]}
""",
            wait=False,
        )
        web = MtlsAgent(
            app,
            "h3",
            "127.0.0.3",
            tmp_path / "h3",
            [
                {
                    "name": "web-1",
                    "service": "web",
                    "inboundPort": port,
                    "appAddress": backend.address[0],
                    "appPort": backend.address[1],
                }
            ],
        )
        async with agents(web):
            # (joined with the plaintext address it would use otherwise: --xds-tls wins)
            app_xds = app.xds_addr
            app.xds_addr = ("127.0.0.1", 1)
            try:
                await web.join()
            finally:
                app.xds_addr = app_xds
            await web.start()
            await web.wait_running()

            def synced() -> bool:
                found = [p for p in app.plane.proxy_status() if p.node_id == NODE]
                return bool(found) and found[0].state == "synced"

            await wait_until(synced, timeout=60, what=f"{NODE} synced over mTLS xDS")
            assert app.plane.monitor.has_authenticated(NODE)

            admin = web.status()["workloads"]["default/web-1"]["envoy"]["admin"]
            async with EnvoyAdmin(admin) as envoy:
                stats = await envoy.stats(r"^cluster\.gossamer-xds\.ssl\.")
            assert stats.get("cluster.gossamer-xds.ssl.handshake", 0) >= 1, stats
            assert stats.get("cluster.gossamer-xds.ssl.connection_error", 0) == 0, stats

            # the config it got over mTLS serves: the inbound listener reaches the app
            async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
                answer = await client.get(f"http://127.0.0.3:{port}/hello")
            assert answer.status_code == 200, answer.text
