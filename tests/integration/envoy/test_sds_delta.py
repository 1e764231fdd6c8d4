"""Delta SDS (``DeltaSecrets``) against a real Envoy whose secrets are configured with
``api_type: DELTA_GRPC``: the TLS listener gets its certificate and trust bundle over delta
streams, a rotated certificate pushed over delta reaches new connections, a removal is
ACKed and changes nothing Envoy serves (Envoy ignores removals of a listener's secret), a
secret put back is served again, and after the server restarts Envoy's reconnecting streams
say what they hold, which is not sent again."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.config.core.v3 import config_source_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from tests.integration.agent.sds_helpers import (
    PROXY,
    MeshCa,
    client_context,
    peer_certificate,
    tls_bootstrap,
)

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.sds.secrets import (
    SecretCache,
    bundle_version,
    identity_secret,
    trust_bundle_secret,
)
from gossamer.envoy.sds.server import SdsServer
from gossamer.envoy.validate import validate_config
from gossamer.polling import wait_until
from gossamer.testing.ports import free_port
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET
from gossamer.types import spiffe_id

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

OWNER = "default/web"
WEB = spiffe_id("shop.local", "default", "web")
CLIENT = spiffe_id("shop.local", "default", "client")


def delta_bootstrap(sds_socket: Path, port: int) -> bootstrap_pb2.Bootstrap:
    """``tls_bootstrap`` with each of the listener's SDS secret configs on ``DELTA_GRPC``."""
    bootstrap = tls_bootstrap(sds_socket, port)
    (listener,) = bootstrap.static_resources.listeners
    socket = listener.filter_chains[0].transport_socket
    context = tls_pb2.DownstreamTlsContext()
    assert socket.typed_config.Unpack(context)
    common = context.common_tls_context
    configs = [
        *common.tls_certificate_sds_secret_configs,
        common.validation_context_sds_secret_config,
    ]
    for config in configs:
        config.sds_config.api_config_source.api_type = config_source_pb2.ApiConfigSource.DELTA_GRPC
    socket.typed_config.Pack(context)
    return bootstrap


async def served_serial(ctx: ssl.SSLContext, url: str) -> int:
    """The serial of the certificate Envoy presents on a new connection."""
    async with httpx.AsyncClient(verify=ctx, trust_env=False) as client:
        r = await client.get(url)
        assert (r.status_code, r.text) == (200, "ok")
        ssl_object = r.extensions["network_stream"].get_extra_info("ssl_object")
        serial, uris = peer_certificate(ssl_object.getpeercert(binary_form=True))
    assert uris == [WEB]
    return serial


async def test_envoy_on_delta_sds_serves_rotates_and_survives_a_removal(tmp_path: Path) -> None:
    ca = MeshCa.create(tmp_path / "ca")
    cache = SecretCache()
    cache.assign(PROXY.node_id, OWNER)
    chain, key, first = ca.issue(WEB)
    cache.put(OWNER, identity_secret(chain, key, f"{first:x}"), trust_bundle_secret(ca.pem))
    server = SdsServer(cache)
    socket = tmp_path / "sds.sock"
    await server.start(socket)
    port = free_port()
    url = f"https://127.0.0.1:{port}/"
    client_chain, client_key, _ = ca.issue(CLIENT)
    ctx = client_context(ca, client_chain, client_key, tmp_path)
    bootstrap = delta_bootstrap(socket, port)
    await validate_config(bootstrap)
    try:
        async with EnvoyProcess(bootstrap, name="web-delta") as envoy:
            record = server.proxies[PROXY.node_id]

            def holds(serial: int | None) -> bool:
                want = None if serial is None else f"{serial:x}"
                return record.acked.get(IDENTITY_SECRET) == want

            await wait_until(
                lambda: holds(first) and TRUST_BUNDLE_SECRET in record.acked,
                timeout=10,
                what="Envoy to ACK the identity and the trust bundle over delta SDS",
            )
            assert record.acked[TRUST_BUNDLE_SECRET] == bundle_version(ca.pem)
            assert record.delta_streams == 2 and record.error is None
            assert await served_serial(ctx, url) == first

            # a rotation pushed over the delta stream
            new_chain, new_key, second = ca.issue(WEB)
            cache.put(OWNER, identity_secret(new_chain, new_key, f"{second:x}"))
            await wait_until(lambda: holds(second), timeout=10, what="the rotation ACKed")
            assert await served_serial(ctx, url) == second

            # a removal: ACKed (Envoy ignores it for a listener's secret), traffic unchanged
            cache.remove(OWNER, IDENTITY_SECRET)
            await wait_until(lambda: holds(None), timeout=10, what="the removal ACKed")
            assert record.error is None
            assert await served_serial(ctx, url) == second

            # and put back: sent again, served
            third_chain, third_key, third = ca.issue(WEB)
            cache.put(OWNER, identity_secret(third_chain, third_key, f"{third:x}"))
            await wait_until(lambda: holds(third), timeout=10, what="the new secret ACKed")
            assert await served_serial(ctx, url) == third
            stats = await envoy.stats(r"^sds\.")
            assert stats[f"sds.{IDENTITY_SECRET}.update_rejected"] == 0, stats
            # first, rotation, removal (Envoy ACKs it and keeps the secret), put back
            assert stats[f"sds.{IDENTITY_SECRET}.update_success"] == 4, stats

            # the server restarts: Envoy says what it holds, and is not sent it again
            await server.stop()
            server = SdsServer(cache)
            await server.start(socket)
            await wait_until(
                lambda: server.proxies.get(PROXY.node_id, record).delta_streams == 2,
                timeout=15,
                what="Envoy to reconnect its delta SDS streams",
            )
            again = server.proxies[PROXY.node_id]
            assert again.acked == {
                IDENTITY_SECRET: f"{third:x}",
                TRUST_BUNDLE_SECRET: bundle_version(ca.pem),
            }
            assert await served_serial(ctx, url) == third
            stats = await envoy.stats(r"^sds\.")
            assert stats[f"sds.{IDENTITY_SECRET}.update_success"] == 4, stats
    finally:
        await server.stop()
