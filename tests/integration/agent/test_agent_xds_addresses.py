"""An agent joined without ``--xds`` dials the xDS address the control plane advertised
(not port 18000), and says once, in its log, when no xDS address answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from tests.integration.agent.agents import AgentHandle, new_token

from gossamer.polling import wait_until
from gossamer.testing.controlplane import api_client, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_agent_learns_the_xds_address_and_warns_when_none_answers(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        handle = AgentHandle(app, "h1", "127.0.0.3", tmp_path / "h1", [], plaintext_xds=False)
        try:
            await handle.join()
            cred = handle.state.credential()
            assert cred.xds_tls == f"127.0.0.1:{app.xds_tls_addr[1]}"
            assert cred.xds == f"127.0.0.1:{app.xds_addr[1]}"
            # the control plane moved its xDS port since: the agent says so, once
            dead = free_port()
            handle.state.save_credential(dataclasses.replace(cred, xds_tls=f"127.0.0.1:{dead}"))
            await handle.start()
            log = tmp_path / "h1-agent-1.log"
            silent = f"host h1: no xDS address of the control plane answers (127.0.0.1:{dead})"
            await wait_until(
                lambda: log.exists() and silent in log.read_text(),
                timeout=30,
                what="the agent's warning",
            )
            assert log.read_text().count("no xDS address of the control plane answers") == 1
        finally:
            await handle.cleanup()


async def test_the_join_answer_and_the_public_answer_list_the_xds_addresses(
    tmp_path: Path,
) -> None:
    async with running_control_plane(tmp_path / "cp") as app:
        plain = f"127.0.0.1:{app.xds_addr[1]}"
        tls = f"127.0.0.1:{app.xds_tls_addr[1]}"
        token = await new_token(app)
        async with api_client(app, trust_env=False) as client:
            joined = await client.post("/v1/agents/join", json={"token": token, "host": "h2"})
            public = await client.get("/xds-addresses", headers={"authorization": ""})
        assert joined.status_code == 200, joined.text
        answer = joined.json()
        # lists (several addresses with replicas), and the single fields as before
        assert answer["xdsAddresses"] == [plain] and answer["xdsTlsAddresses"] == [tls]
        assert answer["xdsAddress"] == plain and answer["xdsTlsAddress"] == tls
        assert public.status_code == 200, public.text
        assert public.json() == {
            "xdsAddresses": [plain],
            "xdsTlsAddresses": [tls],
            "xdsAddress": plain,
            "xdsTlsAddress": tls,
        }
