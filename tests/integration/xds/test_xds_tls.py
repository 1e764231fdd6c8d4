"""xDS over mTLS against a real control plane (SQLite store, API and xDS on loopback), with
fake Envoys (``AdsClient``) holding certificates that hosts got over the REST API: a host
gets its proxy's config with its own certificate; an anonymous client in ``required`` mode,
a certificate of one service asking for another's node, and a certificate issued to
another host get nothing; and no second client can ACK or NACK in a proxy's name."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio

from gossamer.agent.client import RegistryClient
from gossamer.ca import keys
from gossamer.errors import WaitTimeoutError
from gossamer.model import parse_manifest
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.ads_client import AdsClient, connect, envoy_node, tls_credentials
from gossamer.testing.controlplane import (
    api_verify,
    apply_manifests,
    operator_headers,
    running_control_plane,
)
from gossamer.testing.mesh import service, workload
from gossamer.types import ProxyIdentity
from gossamer.xds.resources import ResourceType

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WEB_1 = ProxyIdentity("sidecar", "default", "web-1", service="web", host="vm-a")
WEB_2 = ProxyIdentity("sidecar", "default", "web-2", service="web", host="vm-b")
API_1 = ProxyIdentity("sidecar", "default", "api-1", service="api", host="vm-b")


@dataclass
class Host:
    """A host that joined, registered its workloads and got a certificate for a service."""

    agent_id: str
    key_pem: bytes
    chain_pem: bytes
    bundle_pem: bytes

    def credentials(self) -> grpc.ChannelCredentials:
        return tls_credentials(self.bundle_pem, self.key_pem, self.chain_pem)


async def enroll(app: ControlPlaneApp, host: str, svc: str, *workloads: dict[str, Any]) -> Host:
    """Join as ``host``, register ``workloads`` and get a certificate for ``svc``, all over
    the REST API as an agent does."""
    served = {w["spec"]["service"] for w in workloads}
    async with httpx.AsyncClient(
        base_url=app.api_url, timeout=10, trust_env=False, verify=api_verify(app)
    ) as c:
        created = await c.post(
            "/v1/tokens",
            json={"ttlSeconds": 600, "scope": {"services": sorted(served)}},
            headers=operator_headers(app),
        )
        assert created.status_code == 200, created.text
        token = created.json()["token"]
    async with RegistryClient(app.api_url) as anonymous:  # verified by the token's pin
        joined = await anonymous.join(token, host)
    agent_id, credential = joined.agent_id, joined.credential
    async with RegistryClient(app.api_url, agent_id, credential, verify=api_verify(app)) as api:
        await api.put_workloads(list(workloads))
        key = keys.new_key()
        issued = await api.request_certificate(f"default/{svc}", keys.csr_for(key, None))
    return Host(agent_id, keys.key_pem(key), issued.chain_pem, issued.trust_bundle_pem)


async def mesh_of_two_hosts(app: ControlPlaneApp) -> tuple[Host, Host]:
    """vm-a runs web-1 (service web, calling api); vm-b runs web-2 (web) and api-1 (api),
    and holds a certificate for web."""
    await apply_manifests(app, [service("web"), service("api")], wait=False)
    a = await enroll(
        app,
        "vm-a",
        "web",
        workload(
            "web-1", "web", "127.0.0.2", 15006, 8080, host="vm-a", dependencies=[{"service": "api"}]
        ),
    )
    b = await enroll(
        app,
        "vm-b",
        "web",
        workload("web-2", "web", "127.0.0.3", 15006, 8080, host="vm-b"),
        workload("api-1", "api", "127.0.0.3", 15007, 8081, host="vm-b"),
    )
    return a, b


@pytest_asyncio.fixture
async def app(tmp_path: Path) -> AsyncIterator[ControlPlaneApp]:
    async with running_control_plane(tmp_path / "cp") as running:
        yield running


def status(app: ControlPlaneApp, node_id: str) -> str:
    found = [s for s in app.plane.proxy_status() if s.node_id == node_id]
    return found[0].state if found else "absent"


async def refused(client: AdsClient) -> grpc.StatusCode | None:
    """Wait until ``client``'s stream ended; the status code it ended with."""
    await client.wait_for(lambda c: c.closed, 10, "the stream ending")
    assert client.error is not None, "the stream ended without an error"
    assert isinstance(client.error, grpc.aio.AioRpcError), client.error
    return client.error.code()


async def test_a_host_gets_its_proxys_config_over_mtls(app: ControlPlaneApp) -> None:
    a, _ = await mesh_of_two_hosts(app)
    assert app.xds_tls_addr[1] > 0
    async with connect(WEB_1, app.xds_tls_addr, credentials=a.credentials()) as web:
        await web.wait_for(lambda c: c.resources(ResourceType.LISTENER), 10, "listeners")
        await web.wait_for(lambda c: status(app, WEB_1.node_id) == "synced", 10, "synced")
    assert web.error is None


async def test_an_anonymous_client_gets_nothing_when_mtls_is_required(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp", xds_tls="required") as app:
        a, _ = await mesh_of_two_hosts(app)
        assert app.xds_addr == ("", 0), "required: no plaintext xDS port"
        plain = app.xds_tls_addr  # (the one xDS port, plaintext refused there)
        async with connect(WEB_1, plain) as anonymous:
            assert await refused(anonymous) == grpc.StatusCode.UNAVAILABLE
        assert anonymous.summary() == {t.short: [] for t in ResourceType}
        # TLS, trusting the server, but no client certificate: the handshake fails
        async with connect(
            WEB_1, app.xds_tls_addr, credentials=tls_credentials(a.bundle_pem)
        ) as no_cert:
            assert await refused(no_cert) == grpc.StatusCode.UNAVAILABLE
        assert no_cert.summary() == {t.short: [] for t in ResourceType}
        # and with its certificate the same host is served
        async with connect(WEB_1, app.xds_tls_addr, credentials=a.credentials()) as web:
            await web.wait_for(lambda c: c.resources(ResourceType.LISTENER), 10, "listeners")


async def test_a_certificate_gets_nothing_for_another_service_or_host(
    app: ControlPlaneApp,
) -> None:
    a, b = await mesh_of_two_hosts(app)
    # vm-a's certificate (service web) asking for vm-b's api-1 (service api)
    async with connect(API_1, app.xds_tls_addr, credentials=a.credentials()) as other_service:
        assert await refused(other_service) == grpc.StatusCode.PERMISSION_DENIED
    assert "api" in str(other_service.error)
    # vm-b's certificate is of service web too, but vm-a registered web-1
    async with connect(WEB_1, app.xds_tls_addr, credentials=b.credentials()) as other_host:
        assert await refused(other_host) == grpc.StatusCode.PERMISSION_DENIED
    assert f"issued to agent {b.agent_id}" in str(other_host.error)
    # a node whose metadata claims another service than its certificate's
    lying = envoy_node(ProxyIdentity("sidecar", "default", "web-2", service="api", host="vm-b"))
    async with connect(WEB_2, app.xds_tls_addr, credentials=b.credentials(), node=lying) as liar:
        assert await refused(liar) == grpc.StatusCode.PERMISSION_DENIED
    for client in (other_service, other_host, liar):
        assert client.summary() == {t.short: [] for t in ResourceType}
    assert status(app, API_1.node_id) == "absent"


async def test_no_second_client_acks_or_nacks_in_a_proxys_name(app: ControlPlaneApp) -> None:
    a, b = await mesh_of_two_hosts(app)
    # An anonymous client (the optional mode's plaintext port) claims web-1 before the real
    # Envoy connects, and ACKs whatever it is sent.
    async with connect(WEB_1, app.xds_addr) as early:
        await early.wait_for(lambda c: status(app, WEB_1.node_id) == "synced", 10, "synced")
        async with connect(WEB_1, app.xds_tls_addr, credentials=a.credentials()) as web:
            await web.wait_for(
                lambda c: (
                    app.plane.monitor.has_authenticated(WEB_1.node_id)
                    and status(app, WEB_1.node_id) == "synced"
                ),
                10,
                "synced over mTLS",
            )
            # from now on neither another host's certificate nor anonymity gets in, and a
            # client NACKing everything cannot make web-1 look rejected
            forged = AdsClient(WEB_1, delta=False)
            for t in ResourceType:
                forged.reject(t)
            async with connect(WEB_1, app.xds_tls_addr, credentials=b.credentials(), client=forged):
                assert await refused(forged) == grpc.StatusCode.PERMISSION_DENIED
            late = AdsClient(WEB_1, delta=False)
            for t in ResourceType:
                late.reject(t)
            async with connect(WEB_1, app.xds_addr, client=late):
                assert await refused(late) == grpc.StatusCode.PERMISSION_DENIED
            assert "anonymous" in str(late.error)
            assert status(app, WEB_1.node_id) == "synced"

            # The real Envoy rejects the next change and the impostor (still connected)
            # ACKs it: apply --wait must not count the impostor's ACK.
            acked = early.counters.acks
            for t in ResourceType:
                web.reject(t)
            with pytest.raises(WaitTimeoutError, match="web-1"):
                await app.plane.apply(
                    [parse_manifest(service("api", port=9090))], wait=True, wait_timeout=3
                )
            assert status(app, WEB_1.node_id) == "rejected"
            assert early.counters.acks > acked and not early.closed  # it ACKed, to no avail
