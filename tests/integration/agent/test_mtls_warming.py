"""A sidecar whose Envoy has not got its certificate yet is not sent mTLS.

Measured with Envoy 1.40: Envoy ACKs a listener that takes TLS at once, while the listener
still *warms* until SDS delivers its secrets; the old plaintext listener serves meanwhile,
and mTLS sent to it fails. So the control plane marks a sidecar's endpoints only once its
agent reported that the Envoy ACKed ``identity`` and ``trust-bundle`` over SDS.

Here the agents' SDS servers (the agent's own ``SdsServer``) are run by the test, so that
reviews' certificate can be held back; the test reports what the Envoys ACKed as the agent
does with its heartbeat (``TlsFollower.set_secrets_held``). A bounded sequential load runs
through web's sidecar all along: no request may fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.envoy.sds.secrets import SecretCache, identity_secret, trust_bundle_secret
from gossamer.envoy.sds.server import SdsServer
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET
from gossamer.types import ProxyIdentity

from .agents import PACED, Load
from .mtls_mesh import REVIEWS_ID, TD, WEB_ID, xfcc_uris
from .sds_helpers import MeshCa

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

WEB = ProxyIdentity("sidecar", "default", "web-1", service="web", host="h2")
WEB_2 = ProxyIdentity("sidecar", "default", "web-2", service="web", host="h4")
REVIEWS = ProxyIdentity("sidecar", "default", "reviews-1", service="reviews", host="h3")


#: the web sidecars' inbound ports (web-1, web-2)
WEB_PORTS = (free_port("127.0.0.2"), free_port("127.0.0.4"))


def _mesh(reviews_mode: str, app: tuple[str, int], inbound: int, outbound: list[int]) -> str:
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: {TD}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}], mtls: {{mode: {reviews_mode}}}}}
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: web-1}}
spec:
  service: web
  address: 127.0.0.2
  ports: [{{port: {WEB_PORTS[0]}, appPort: 1}}]
  dependencies: [{{service: reviews, localAddress: 127.0.0.2, localPort: {outbound[0]}}}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: web-2}}
spec:
  service: web
  address: 127.0.0.4
  ports: [{{port: {WEB_PORTS[1]}, appPort: 1}}]
  dependencies: [{{service: reviews, localAddress: 127.0.0.4, localPort: {outbound[1]}}}]
---
apiVersion: gossamer.dev/v1
kind: Workload
metadata: {{name: reviews-1}}
spec:
  service: reviews
  address: 127.0.0.3
  appAddress: {app[0]}
  ports: [{{port: {inbound}, appPort: {app[1]}}}]
"""


@dataclass
class Host:
    """One simulated host's SDS server (as its agent runs it) and its Envoy."""

    proxy: ProxyIdentity
    sds: SdsServer
    envoy: EnvoyProcess

    def holds_secrets(self) -> bool:
        record = self.sds.proxies.get(self.proxy.node_id)
        acked = record.acked if record is not None and record.streams > 0 else {}
        return all(acked.get(n) for n in (IDENTITY_SECRET, TRUST_BUNDLE_SECRET))


@contextlib.asynccontextmanager
async def _host(
    app: ControlPlaneApp, proxy: ProxyIdentity, tmp: Path, identity: tuple[MeshCa, str] | None
) -> AsyncIterator[Host]:
    """``identity``: the CA and SPIFFE id of the certificate its agent already has."""
    cache = SecretCache()
    cache.assign(proxy.node_id, f"default/{proxy.service}")
    if identity is not None:
        _give(cache, proxy, *identity)
    sds = SdsServer(cache)
    await sds.start(tmp / f"{proxy.name}.sock")
    admin = ("127.0.0.1", free_port())
    bootstrap = ads_bootstrap(
        proxy, app.xds_addr, admin, metadata={"admin": f"{admin[0]}:{admin[1]}"},
        sds_socket=tmp / f"{proxy.name}.sock",
    )  # fmt: skip
    try:
        async with EnvoyProcess(bootstrap, workdir=tmp / proxy.name, name=proxy.name) as envoy:
            yield Host(proxy, sds, envoy)
    finally:
        await sds.stop()


def _give(cache: SecretCache, proxy: ProxyIdentity, ca: MeshCa, uri: str) -> None:
    chain, key, serial = ca.issue(uri)
    cache.put(
        f"default/{proxy.service}",
        identity_secret(chain, key, format(serial, "x")),
        trust_bundle_secret(ca.pem),
    )


async def _more(load: Load, n: int) -> None:
    """Until ``n`` more requests of ``load`` were answered (or failed)."""
    mark = load.ok + len(load.failed)
    await wait_until(lambda: load.ok + len(load.failed) >= mark + n, timeout=30, what="load")


async def _has_endpoint(host: Host, address: str) -> bool:
    return f"::{address}:" in await host.envoy.admin_get("/clusters")


async def _burst(url: str, n: int) -> list[str]:
    """``n`` requests at once (so web's sidecar opens new connections); the failures."""
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        answers = await asyncio.gather(*(client.get(url) for _ in range(n)), return_exceptions=True)
    return [
        repr(a) if isinstance(a, BaseException) else f"{a.status_code} {a.text[:100]}"
        for a in answers
        if isinstance(a, BaseException) or a.status_code != 200
    ]


async def test_a_sidecar_still_warming_its_certificate_is_not_sent_mtls(tmp_path: Path) -> None:
    inbound, outbound = free_port("127.0.0.3"), [free_port("127.0.0.2"), free_port("127.0.0.4")]
    async with (
        running_control_plane(tmp_path / "cp") as app,
        HttpBackend("reviews-1", host="127.0.0.3") as reviews_app,
    ):
        await apply_yaml(app, _mesh("off", reviews_app.address, inbound, outbound), wait=False)
        ca = MeshCa.create(tmp_path / "ca")
        async with (
            _host(app, WEB, tmp_path, (ca, WEB_ID)) as web,
            _host(app, REVIEWS, tmp_path, None) as reviews,
        ):

            def report() -> None:  # what the agents say with their heartbeats
                for h in (web, reviews):
                    held = frozenset({h.proxy.node_id}) if h.holds_secrets() else frozenset()
                    app.plane.mtls.set_secrets_held(h.proxy.name, held)

            load = Load(f"http://127.0.0.2:{outbound[0]}/load", max_seconds=120, pace=PACED)
            task = asyncio.create_task(load.run())
            try:
                await wait_until(lambda: load.ok >= 10, timeout=30, what="plaintext traffic")
                report()
                # reviews moves to permissive: its Envoy ACKs a listener taking TLS, which
                # warms (no certificate yet) while the plaintext one serves
                await apply_yaml(
                    app, _mesh("permissive", reviews_app.address, inbound, outbound), wait=True
                )
                warming = await reviews.envoy.stats(r"total_listeners_warming")
                assert warming == {"listener_manager.total_listeners_warming": 1}, warming
                for _ in range(5):  # a few heartbeats' worth of reports and requests
                    report()
                    await _more(load, 40)
                assert load.failed == [], load.failed[:5]
                assert app.plane.tls.state().ready == {("default", "web-1")}
                # web's one (HTTP/2) connection to reviews was made before: a new caller's
                # first connection is what mTLS to a warming listener would break
                async with _host(app, WEB_2, tmp_path, (ca, WEB_ID)) as web_2:
                    await wait_until(
                        lambda: _has_endpoint(web_2, "127.0.0.3"), timeout=30,
                        what="web-2's sidecar knowing reviews",
                    )  # fmt: skip
                    burst = await _burst(f"http://127.0.0.4:{outbound[1]}/burst", 8)
                    assert burst == [], burst[:5]

                # the certificate arrives, the agent reports it: mTLS from then on
                _give(reviews.sds.cache, REVIEWS, ca, REVIEWS_ID)
                await wait_until(reviews.holds_secrets, timeout=30, what="reviews' secrets")
                report()
                await wait_until(
                    lambda: xfcc_uris(reviews_app.seen[-1].headers) == [WEB_ID],
                    timeout=30,
                    what="web -> reviews over mTLS",
                )
                mark = load.ok
                await wait_until(lambda: load.ok >= mark + 10, timeout=30, what="load")
            finally:
                load.stop()
                await task
            print(f"load: sent {load.ok + len(load.failed)}, failed {len(load.failed)}")
            assert load.failed == [], load.failed[:5]
