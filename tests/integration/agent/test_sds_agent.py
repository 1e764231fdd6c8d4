"""A real agent against a real control plane: it makes a key, gets a certificate for its
workload's service over ``POST /v1/agents/{id}/certificates`` and serves it with the trust
bundle over its SDS socket; a restarted agent serves the kept certificate and Envoy's SDS
stream comes back to the same socket path."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import api_client, apply_yaml, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET

from .agents import AgentHandle, agents

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.asyncio]

NODE = "sidecar~default~web-1"


async def _fetch(socket: Path, node_id: str) -> dict[str, secret_pb2.Secret]:
    """The secrets the agent's SDS server gives ``node_id`` (FetchSecrets)."""
    async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        answer = await stub.FetchSecrets(
            discovery_pb2.DiscoveryRequest(
                node=base_pb2.Node(id=node_id),
                resource_names=[IDENTITY_SECRET, TRUST_BUNDLE_SECRET],
            ),
            timeout=5,
        )
    out = {}
    for packed in answer.resources:
        secret = secret_pb2.Secret()
        packed.Unpack(secret)
        out[secret.name] = secret
    return out


def _identity(status: dict[str, Any]) -> dict[str, Any] | None:
    ident = status.get("identities", {}).get("default/web")
    return ident if ident and ident.get("state") == "issued" else None


async def test_an_agent_gets_a_certificate_over_rest_and_serves_it_over_sds(
    tmp_path: Path,
) -> None:
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("web-1", host="127.0.0.3") as backend,
    ):
        await apply_yaml(
            app,
            f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: shop.local}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: {free_port()}}}]}}
""",
            wait=False,
        )
        web = AgentHandle(
            app,
            "h3",
            "127.0.0.3",
            tmp_path / "h3",
            [
                {
                    "name": "web-1",
                    "service": "web",
                    "appAddress": backend.address[0],
                    "appPort": backend.address[1],
                }
            ],
        )
        async with agents(web):
            await web.join()
            await web.start()
            await web.wait_running()
            socket = web.state_dir / "sds.sock"
            status = await wait_until(
                lambda: _identity(web.status()), timeout=30, what="a certificate for web"
            )
            assert isinstance(status, dict)
            assert status["spiffe_id"] == "spiffe://shop.local/ns/default/sa/web"
            assert stat.S_IMODE(os.stat(socket).st_mode) == 0o600
            assert web.status()["sds_socket"] == str(socket.absolute())

            secrets = await _fetch(socket, NODE)
            chain = secrets[IDENTITY_SECRET].tls_certificate.certificate_chain.inline_bytes
            leaf = x509.load_pem_x509_certificate(chain)
            assert format(leaf.serial_number, "x") == status["serial"]
            uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            assert uris.value.get_values_for_type(x509.UniformResourceIdentifier) == [
                status["spiffe_id"]
            ]
            bundle = secrets[TRUST_BUNDLE_SECRET].validation_context.trusted_ca.inline_bytes
            async with api_client(app, trust_env=False) as api:
                ca = (await api.get("/v1/ca")).json()
            roots = {format(c.serial_number, "x") for c in x509.load_pem_x509_certificates(bundle)}
            assert {c["serial"] for c in ca["roots"]} <= roots
            # a proxy this agent does not run gets nothing
            assert await _fetch(socket, "sidecar~default~intruder") == {}
            # the key is kept 0600 on the host
            kept = web.state_dir / "identity" / "default%2Fweb.json"
            assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
