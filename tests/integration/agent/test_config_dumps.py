"""``proxy-config`` through the host that runs the proxy (issue 9, "No request forgery").

The control plane never fetches a URL a proxy chose: a config dump comes from the agent
that runs the Envoy, over the agent's own long-poll, read from the agent's local record.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from gossamer.testing import (
    AdsClient,
    HttpBackend,
    envoy_node,
    running_control_plane,
    wait_until,
)
from gossamer.testing.ads_client import connect
from gossamer.testing.controlplane import api_client, apply_manifests
from gossamer.testing.mesh import service, workload
from gossamer.types import ProxyIdentity

from .agents import AgentHandle, agents, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_proxy_config_never_fetches_the_admin_address_a_proxy_announced(
    tmp_path: Path,
) -> None:
    """An xDS client announces an "admin address" pointing at a server of its choosing;
    asking for its config dump must not make the control plane send that server anything
    (before: the control plane GET <admin>/config_dump and returned the answer: SSRF)."""
    async with (
        HttpBackend("target", host="127.0.0.1") as target,
        running_control_plane(tmp_path / "cp") as app,
    ):
        proxy = ProxyIdentity("sidecar", "default", "evil-1", service="reviews")
        node = envoy_node(proxy, {"admin": f"127.0.0.1:{target.address[1]}"})
        async with (
            api_client(app) as api,
            connect(proxy, app.xds_addr, node=node) as ads,
        ):
            assert isinstance(ads, AdsClient)
            await apply_manifests(
                app,
                [service("reviews", 9080), workload("evil-1", "reviews", "127.0.0.2", 15001, 9080)],
                wait=False,
            )
            await wait_until(
                lambda: any(p.node_id == proxy.node_id for p in app.plane.proxy_status()),
                timeout=10,
                what="the xDS client to be counted",
            )
            r = await api.get("/v1/proxies/sidecar~default~evil-1/config", params={"timeout": 2})
        assert target.requests == 0, f"the control plane fetched {target.requests_by_path}"
        assert r.status_code == 404, r.text
        assert r.json()["errors"] == [
            "no host runs sidecar~default~evil-1; its config dump is available only "
            "through its agent or gateway"
        ]


async def test_an_agent_run_sidecars_config_dump_through_the_cli_and_the_host_offline(
    tmp_path: Path,
) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("reviews-app", host="127.0.0.3") as backend,
    ):
        await apply_manifests(app, [service("reviews", 9080)], wait=False)
        reviews = AgentHandle(
            app,
            "host-a",
            "127.0.0.3",
            tmp_path / "a",
            [
                {
                    "name": "reviews-1",
                    "service": "reviews",
                    "appAddress": backend.address[0],
                    "appPort": backend.address[1],
                }
            ],
        )
        server = ("--server", app.api_url)
        async with agents(reviews):
            await reviews.join()
            await reviews.start()
            await reviews.wait_running()
            await wait_until(
                lambda: any(
                    p.name == "reviews-1" and p.state == "synced" for p in app.plane.proxy_status()
                ),
                timeout=30,
                what="the agent's sidecar to sync",
            )
            code, out = await run_cli(
                "proxy-config", "reviews-1", "--type", "listeners", *server, timeout=30
            )
            assert code == 0, out
            (section,) = json.loads(out)["configs"]
            names = {d["name"] for d in section["dynamic_listeners"]}
            assert any(n.startswith("inbound|") for n in names), names

            # endpoints are in Envoy's config dump only when asked for (include_eds)
            code, out = await run_cli("proxy-config", "reviews-1", "--type", "endpoints", *server)
            assert code == 0, out
            (section,) = json.loads(out)["configs"]
            assert section["@type"].endswith("EndpointsConfigDump")

            # the agent detaches (its Envoy keeps running): nobody answers for that host
            assert await reviews.signal(signal.SIGHUP) == 0
            started = time.monotonic()
            code, out = await run_cli(
                "proxy-config", "default/reviews-1", "--timeout", "2", *server, timeout=30
            )
            elapsed = time.monotonic() - started
            assert code == 1, out
            assert (
                "host host-a (which runs sidecar~default~reviews-1) did not pick up the "
                "config-dump request within 2 s: its agent is offline"
            ) in out
            # (the message names the 2 s deadline the server applied; the wall clock also
            # counts starting the CLI, seconds on a loaded CI machine)
            assert elapsed < 20, elapsed
