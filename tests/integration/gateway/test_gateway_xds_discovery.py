"""``gossamer gateway`` learns where the control plane serves xDS instead of assuming port
18000: joined (``--token``/``--state-dir``) it dials the mTLS address advertised at join,
without a credential it asks the control plane's public discovery, and it says so in one
line when the control plane cannot tell it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from test_gateway_process import gateway_cli, mesh
from tests.integration.agent.agents import run_cli
from tests.integration.gateway.gateways import wait_served

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow]


async def test_gateway_without_xds_flags_dials_the_advertised_ports(tmp_path: Path) -> None:
    async with (
        HttpBackend("shop", host="127.0.0.3") as shop,
        running_control_plane(tmp_path / "cp") as app,
        httpx.AsyncClient(timeout=20, trust_env=False) as client,
    ):
        assert app.xds_addr[1] != 18000 and app.xds_tls_addr[1] != 18000
        gw_port = free_port()
        await apply_yaml(app, mesh(shop.address, gw_port), wait=False)
        code, out = await run_cli(
            "token", "create", "--gateway", "default/edge", "--server", app.api_url
        )
        assert code == 0, out
        token = out.splitlines()[0].strip()
        state = tmp_path / "state"
        url = f"http://127.0.0.1:{gw_port}/"
        joined = ("--token", token, "--state-dir", str(state))
        async with gateway_cli(
            tmp_path, "--name", "edge", "--server", app.api_url, "--drain-seconds", "1", *joined
        ) as gw:
            await wait_served(client, url)
            tls = f"xDS {app.xds_tls_addr[0]}:{app.xds_tls_addr[1]}"
            # (Envoy may serve a moment before its supervisor's "Envoy running" line)
            await wait_until(lambda: "Envoy running" in gw.stderr(), timeout=30, what="started")
            assert tls in gw.stderr()
        # without a credential: the plaintext address the control plane names in public
        (tmp_path / "anon").mkdir()
        async with gateway_cli(
            tmp_path / "anon", "--name", "edge", "--server", app.api_url,
            "--workdir", str(tmp_path / "anon" / "gw"), "--drain-seconds", "1",
        ) as anon:  # fmt: skip
            await wait_until(
                lambda: "Envoy running" in anon.stderr(), timeout=30, what="Envoy started"
            )
            plain = f"xDS {app.xds_addr[0]}:{app.xds_addr[1]}"
            assert plain in anon.stderr(), anon.stderr()
            await wait_served(client, url)


async def test_gateway_says_once_that_no_xds_address_answers_and_when_one_does(
    tmp_path: Path,
) -> None:
    xds_port = free_port()
    unreachable = ["--server", "http://127.0.0.1:9", "--xds-addr", f"127.0.0.1:{xds_port}"]
    async with gateway_cli(
        tmp_path, "--name", "edge", *unreachable, "--workdir", str(tmp_path / "gw")
    ) as gw:
        silent = "no xDS address of the control plane answers"
        await wait_until(lambda: silent in gw.stderr(), timeout=30, what="the warning")
        assert f"(127.0.0.1:{xds_port})" in gw.stderr()
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", xds_port)
        async with server:
            again = f"the control plane's xDS answers again (127.0.0.1:{xds_port})"
            await wait_until(lambda: again in gw.stderr(), timeout=30, what="the recovery")
        # checked every few seconds, said once: one line per event, not per retry
        assert gw.stderr().count(silent) == 1, gw.stderr()
