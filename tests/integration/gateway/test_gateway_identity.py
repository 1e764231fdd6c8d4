"""A gateway with a join token (``gossamer token create --gateway``) holds a credential and
its own mesh identity: its hop into the mesh is mTLS, so a STRICT service behind an
agent-run sidecar serves it, and the app sees the gateway's SPIFFE id in XFCC; a gateway
without a token is refused by the STRICT service and served by a PERMISSIVE one. The
gateway's credential subscribes to xDS only as its gateway, registers no Workload and gets
no certificate of another service. All through real Envoys, agent and control plane."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest
from tests.integration.agent.agents import run_cli
from tests.integration.agent.mtls_mesh import refuses
from tests.integration.gateway.identity_mesh import (
    TD,
    answers,
    identity_mesh,
    manifests,
    until_status,
)

from gossamer.agent.connect import open_registry
from gossamer.agent.state import StateDir
from gossamer.ca import keys
from gossamer.errors import RejectedError
from gossamer.polling import wait_until
from gossamer.testing.ads_client import AdsClient, connect, tls_credentials
from gossamer.testing.controlplane import apply_yaml
from gossamer.testing.mesh import workload
from gossamer.types import ProxyIdentity, spiffe_id
from gossamer.xds.resources import ResourceType

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(300)]

EDGE_ID = spiffe_id(TD, "default", "edge")


async def test_a_gateway_with_a_token_reaches_a_strict_service_over_mtls(tmp_path: Path) -> None:
    async with identity_mesh(tmp_path, reviews_mode="permissive") as mesh:
        token = await mesh.gateway_token("edge")
        state = mesh.tmp_path / "gw-edge" / "state"
        async with (
            mesh.gateway("edge", mesh.edge_port, "--token", token, "--state-dir", str(state))
            as edge,
            mesh.gateway("plain", mesh.plain_port) as plain,
        ):  # fmt: skip
            # permissive: the gateway's hop becomes mTLS once reviews' sidecar takes it,
            # with the gateway's own identity, verified by the sidecar (XFCC)
            async def edge_over_mtls() -> bool:
                return await answers(f"{edge.url}/reviews/one") == 200 and mesh.xfcc_uris(
                    "/reviews/one"
                ) == [EDGE_ID]

            await wait_until(edge_over_mtls, timeout=90, what="edge -> reviews over mTLS")
            await until_status(f"{plain.url}/reviews/warm", 200, "plain -> permissive reviews")
            # strict, applied with wait: when apply returns, reviews' sidecar refuses
            # plaintext (apply --wait covers the mTLS rounds it sets off)
            await apply_yaml(mesh.app, manifests(mesh.edge_port, mesh.plain_port), wait=True)
            assert await refuses(f"http://{mesh.reviews_inbound}/direct")
            assert await answers(f"{edge.url}/reviews/two") == 200
            assert mesh.xfcc_uris("/reviews/two") == [EDGE_ID]
            # a gateway without a credential: refused by strict (once the plaintext
            # connection it held drained), served by permissive
            await until_status(f"{plain.url}/reviews/two", 503, "plain refused by strict")
            assert await answers(f"{plain.url}/ratings/two") == 200
            assert "no credential" in plain.stderr()
            # the gateway's host reports what its Envoy holds, in the agent's shapes
            status = edge.status()
            assert status["gateway"] == "default/edge"
            assert status["identities"]["default/edge"]["state"] == "issued"
            assert status["identities"]["default/edge"]["spiffe_id"] == EDGE_ID
            acked = status["sds"]["acked"]
            assert acked["identity"] == status["identities"]["default/edge"]["serial"]
            assert acked["trust-bundle"]
            assert oct(os.stat(state / "credential.json").st_mode & 0o777) == "0o600"


async def refused(client: AdsClient) -> grpc.StatusCode | None:
    await client.wait_for(lambda c: c.closed, 10, "the stream ending")
    assert isinstance(client.error, grpc.aio.AioRpcError), client.error
    return client.error.code()


async def test_a_gateway_credential_is_good_for_its_gateway_only(tmp_path: Path) -> None:
    async with identity_mesh(tmp_path, reviews_mode="permissive") as mesh:
        token = await mesh.gateway_token("default/edge")
        state = mesh.tmp_path / "gw-edge" / "state"
        args = ("--token", token, "--state-dir", str(state))
        async with mesh.gateway("edge", mesh.edge_port, *args) as edge:
            await until_status(f"{edge.url}/reviews/warm", 200, "edge -> reviews")
            cred = edge.kept("credential.json")
            kept = edge.kept("identity/default%2Fedge.json")
            mine = tls_credentials(
                kept["trustBundle"].encode(),
                kept["privateKey"].encode(),
                kept["certificateChain"].encode(),
            )
            # its config dump comes through the gateway's host (the long-poll), on request
            code, out = await run_cli(
                "proxy-config", "gateway~default~edge", "--server", mesh.app.api_url
            )
            assert code == 0, out
            assert "listener" in out.lower(), out[:500]
            xds = mesh.app.xds_tls_addr
            own = ProxyIdentity("gateway", "default", "edge")
            async with connect(own, xds, credentials=mine) as served:
                await served.wait_for(
                    lambda c: c.resources(ResourceType.LISTENER), 15, "its own listeners"
                )
            for other in (
                ProxyIdentity("gateway", "default", "plain"),
                ProxyIdentity("sidecar", "default", "reviews-1", service="reviews"),
            ):
                async with connect(other, xds, credentials=mine) as client:
                    assert await refused(client) == grpc.StatusCode.PERMISSION_DENIED
                assert client.summary() == {t.short: [] for t in ResourceType}

            async with open_registry(StateDir(state).credential()) as api:
                manifest = workload(
                    "edge-1", "reviews", "127.0.0.9", 15001, 8080, host=cred["host"]
                )
                with pytest.raises(RejectedError) as no_workload:
                    await api.put_workloads([manifest])
                assert no_workload.value.status == 403
                assert "a gateway's host registers no Workloads" in str(no_workload.value)
                csr = keys.csr_for(keys.new_key(), None)
                with pytest.raises(RejectedError) as no_cert:
                    await api.request_certificate("default/reviews", csr)
                assert no_cert.value.status == 403
                assert "gateway default/edge" in str(no_cert.value)
            model = mesh.app.plane.model
            assert model is not None and ("default", "edge-1") not in model.workloads

        # a later start keeps the credential: the used token is ignored, saying so
        async with mesh.gateway("edge", mesh.edge_port, *args) as again:
            await until_status(f"{again.url}/reviews/again", 200, "edge after a restart")
            assert "--token ignored" in again.stderr()
            assert again.kept("credential.json")["agent_id"] == cred["agent_id"]

        # a token for gateway edge does not make gateway plain: refused, nothing kept
        other = await mesh.gateway_token("edge")
        elsewhere = mesh.tmp_path / "gw-plain" / "state"
        async with mesh.gateway(
            "plain", mesh.plain_port, "--token", other, "--state-dir", str(elsewhere)
        ) as wrong:
            code = await asyncio.wait_for(wrong.proc.wait(), 60)
            assert code == 1, wrong.stderr()
            assert "is for gateway default/edge, not gateway default/plain" in wrong.stderr()
            assert not (elsewhere / "credential.json").exists()
