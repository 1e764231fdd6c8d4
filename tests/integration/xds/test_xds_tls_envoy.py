"""A real agent-run Envoy gets its config over mTLS xDS from a control plane that refuses
anything else (``--xds-tls required``): its agent learnt the address at join (no xDS flag
on ``agent join`` or ``agent run``), its bootstrap's ``gossamer-xds`` cluster takes the
workload certificate and trust bundle from its agent over SDS, checks the control plane's
SPIFFE id, and the request it routes through the config it got is answered."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from tests.integration.agent.agents import AgentHandle, agents, new_token, run_cli

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

NODE = "sidecar~default~web-1"


class AdvertisedAgent(AgentHandle):
    """An agent joined and run with no xDS flag: it uses what the join answer advertised."""

    async def join(self) -> None:
        code, out = await run_cli(
            "agent", "join", "--server", self.app.api_url, "--token", await new_token(self.app),
            "--state-dir", str(self.state_dir), "--host", self.host,
        )  # fmt: skip
        assert code == 0, out


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
        web = AdvertisedAgent(
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
            await web.join()
            kept = web.state.credential()
            # required mode: mTLS on --xds-addr itself, and no plaintext address to give
            assert kept.xds_tls == f"127.0.0.1:{app.xds_tls_addr[1]}" and kept.xds == ""
            assert "BEGIN CERTIFICATE" in kept.trust_bundle
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
