"""Traces through real Envoys fed by a control plane with its telemetry child: a failed
request's trace spans gateway -> A -> B with the right parent links (the apps copy
``traceparent``), found by request id over the control plane's API and drawn by
``gossamer trace ID``; changing ``Mesh.spec.tracing.sampling`` between rates above 0
reaches the proxies as route tables and drains no listener; turning tracing off (0) and on
again re-creates the listeners that trace, and no request under way fails."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.store.etcd_planes import Traffic

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import (
    api_client,
    apply_manifests,
    mesh_envoy,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

A, B = "127.0.0.41", "127.0.0.42"
GOSSAMER = str(Path(sys.executable).with_name("gossamer"))
LISTENERS = r"^listener_manager\.(listener_modified|listener_removed|listener_create_success)$"
SAMPLED = r"^http\.gateway.*\.tracing\.random_sampling$"


def mesh(sampling: float) -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "Mesh",
        "metadata": {"name": "default"},
        "spec": {"tracing": {"sampling": sampling}},
    }


def edge(port: int) -> list[Manifest]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "Gateway",
            "metadata": {"name": "edge"},
            "spec": {"address": "127.0.0.1", "port": port},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "Route",
            "metadata": {"name": "edge"},
            "spec": {"gateways": ["edge"], "rules": [{"destinations": [{"service": "a"}]}]},
        },
    ]


async def cli(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def stored(api: httpx.AsyncClient, trace_id: str) -> dict[str, Any]:
    async def found() -> dict[str, Any] | None:
        r = await api.get(f"/v1/traces/{trace_id}")
        return r.json() if r.status_code == 200 else None

    # Envoy exports every 5 s, the service decides a trace 10 s after its last span
    return await wait_until(found, timeout=60, interval=1, what=f"trace {trace_id} stored")


async def test_a_trace_spans_gateway_a_b_and_the_rate_changes_without_a_drain(
    tmp_path: Path,
) -> None:
    gw_port, local = free_port("127.0.0.1"), free_port(A)
    async with (
        HttpBackend("b", host=B) as b_app,
        HttpBackend("a", host=A, next_hop=f"http://{A}:{local}") as a_app,
        running_control_plane(tmp_path, telemetry=TelemetrySettings("auto")) as app,
    ):
        manifests = [
            mesh(100),
            service("a"),
            service("b", 9080),
            workload(
                "a-1", "a", A, free_port(A), a_app.address[1],
                dependencies=[{"service": "b", "localAddress": A, "localPort": local}],
            ),
            workload("b-1", "b", B, free_port(B), b_app.address[1]),
            *edge(gw_port),
        ]  # fmt: skip
        await apply_manifests(app, manifests, wait=False)
        proxies = [
            mesh_envoy(app, ProxyIdentity("gateway", "default", "edge")),
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "a-1")),
            mesh_envoy(app, ProxyIdentity("sidecar", "default", "b-1")),
        ]
        gw = proxies[0]
        url = f"http://127.0.0.1:{gw_port}"
        async with (
            proxies[0], proxies[1], proxies[2],
            httpx.AsyncClient(timeout=10) as c,
            api_client(app) as api,
        ):  # fmt: skip

            async def chained() -> bool:
                try:
                    r = await c.get(url + "/ready")
                except httpx.TransportError:
                    return False
                return r.status_code == 200 and r.json().get("next", {}).get("backend") == "b"

            await wait_until(chained, timeout=60, what="gateway -> a -> b to answer")

            # a failed request: kept whatever --trace-keep says
            r = await c.get(url + "/status/500")
            assert r.status_code == 500
            request_id = r.json()["next"]["headers"]["x-request-id"]
            assert r.json()["headers"]["x-request-id"] == request_id  # a copied it

            async def searched() -> list[dict[str, Any]] | None:
                """The trace once every proxy's spans are in: each Envoy's exporter sends
                its spans on its own flush, so a search may first find part of a trace."""
                q = {"requestId": request_id, "since": "5m"}
                r = await api.get("/v1/traces", params=q)
                assert r.status_code in (200, 503), r.text  # (503: the child is starting)
                found = r.json()["traces"] if r.status_code == 200 else []
                return found if found and len(found[0]["services"]) == 3 else None

            [summary] = await wait_until(searched, timeout=60, interval=1, what="the search")
            assert summary["error"] and summary["status"] == 500
            assert summary["services"] == ["default/a", "default/b", "default/edge"]
            trace = await stored(api, summary["traceId"])
            spans = trace["spans"]
            got = [(s["service"], s["kind"], s["depth"], s["status"]) for s in spans]
            assert got == [
                ("default/edge", "server", 0, 500),  # the gateway's: the root
                ("default/edge", "client", 1, 500),  # its upstream span to a
                ("default/a", "server", 2, 500),  # a's inbound
                ("default/a", "client", 3, 500),  # a's outbound call (a copied traceparent)
                ("default/b", "server", 4, 500),  # b's inbound
            ]
            for parent, child in itertools.pairwise(spans):
                assert child["parentSpanId"] == parent["spanId"]
            # Envoy tags its connection managers' spans with guid:x-request-id (not the
            # router's upstream span)
            assert [s["requestId"] for s in spans] == [request_id, "", *[request_id] * 3]

            code, out = await cli("trace", summary["traceId"], "--server", app.api_url)
            assert code == 0, out
            lines = [line for line in out.splitlines() if "default/" in line]
            assert len(lines) == 5 and "█" in lines[0]
            indents = [len(line) - len(line.lstrip()) for line in lines]
            assert indents == sorted(indents) and indents[0] < indents[-1]
            code, out = await cli("traces", "--request-id", request_id, "--server", app.api_url)
            assert code == 0 and summary["traceId"] in out, out

            # between rates above 0 only the route tables change: no listener is modified
            listeners = {p.name: await p.stats(LISTENERS) for p in proxies}
            sampled = sum((await gw.stats(SAMPLED)).values())
            for _ in range(3):
                assert (await c.get(url + "/ok")).status_code == 200
            assert sum((await gw.stats(SAMPLED)).values()) == sampled + 3
            await apply_manifests(app, [mesh(0.01)])
            sampled = sum((await gw.stats(SAMPLED)).values())
            for _ in range(5):
                assert (await c.get(url + "/ok")).status_code == 200
            # (1 in 10 000 each: two of five with a probability of 1e-7)
            assert sum((await gw.stats(SAMPLED)).values()) <= sampled + 1
            assert {p.name: await p.stats(LISTENERS) for p in proxies} == listeners

            # off (0) takes the tracer out of every HCM, on puts it back: the listeners that
            # trace are re-created (a drain), and no request under way fails
            async def through_a() -> str | None:
                try:
                    r = await c.get(url + "/ok")
                except httpx.TransportError:
                    return None
                return str(r.json().get("backend")) if r.status_code == 200 else None

            for rate, traced in ((0, False), (100, True)):
                load = Traffic(through_a, {"a"})
                async with load.flowing():
                    await load.more(1)
                    await apply_manifests(app, [mesh(rate)])
                    await load.more(1)
                assert load.failed == 0, vars(load)
                for p in proxies:

                    async def settled(p: EnvoyProcess = p, traced: bool = traced) -> bool:
                        return await tracers(p) == {traced}

                    await wait_until(settled, timeout=30, what=f"{p.name}: tracer {traced}")
                assert {p.name: await p.stats(LISTENERS) for p in proxies} != listeners
            async with httpx.AsyncClient(timeout=10) as fresh:  # (the new listener)
                sampled = sum((await gw.stats(SAMPLED)).values())
                for _ in range(3):
                    assert (await fresh.get(url + "/ok")).status_code == 200
                assert sum((await gw.stats(SAMPLED)).values()) == sampled + 3


async def tracers(proxy: EnvoyProcess) -> set[bool]:
    """Whether each HTTP connection manager of ``proxy``'s active listeners has a tracer."""
    dump = await proxy.config_dump(resource="dynamic_listeners")
    hcms = [
        f["typed_config"]
        for listener in dump.get("configs", [])
        for chain in listener.get("active_state", {}).get("listener", {}).get("filter_chains", [])
        for f in chain.get("filters", [])
        if f["name"] == "envoy.filters.network.http_connection_manager"
    ]
    assert hcms, proxy.name
    return {"tracing" in hcm for hcm in hcms}
