"""Two hosts with real agents and Envoys for the mTLS tests: ``web-1`` (service web, on
127.0.0.2) calls ``reviews-1`` (service reviews, on 127.0.0.3) through its sidecar, at the
local address ``gossamer agent env`` gives it. The apps are in-process HTTP backends that
echo the headers they got (so a test sees the ``x-forwarded-client-cert`` the callee's
sidecar hands its app)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gossamer.envoy.admin import EnvoyAdmin
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.types import spiffe_id

from .agents import AgentHandle, agents, run_cli
from .sds_helpers import MeshCa

TD = "shop.local"
WEB_ID = spiffe_id(TD, "default", "web")
REVIEWS_ID = spiffe_id(TD, "default", "reviews")
WEB_HOST, REVIEWS_HOST = "127.0.0.2", "127.0.0.3"


def services(reviews_mode: str | None = None, *, mesh: str = "", reviews_protocol: str = "") -> str:
    """Mesh (``mesh``: extra ``spec.mtls`` fields) and the two services; ``reviews_mode``
    sets reviews' own ``spec.mtls.mode``, ``reviews_protocol`` its port's (e.g. ``tcp``)."""
    reviews_mtls = f", mtls: {{mode: {reviews_mode}}}" if reviews_mode else ""
    port = f"{{name: {reviews_protocol}, port: 9080, protocol: {reviews_protocol}}}"
    reviews_port = port if reviews_protocol else "{name: http, port: 9080}"
    mesh_mtls = f", mtls: {{{mesh}}}" if mesh else ""
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: {TD}{mesh_mtls}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{reviews_port}]{reviews_mtls}}}
"""


@dataclass
class Mesh:
    app: ControlPlaneApp
    web: AgentHandle
    reviews: AgentHandle
    reviews_app: HttpBackend
    #: web's local address for reviews (through web's sidecar)
    outbound: str
    #: reviews' inbound (sidecar) address, ``HOST:PORT``
    inbound: str

    def admin(self, handle: AgentHandle, key: str) -> EnvoyAdmin:
        return EnvoyAdmin(handle.status()["workloads"][key]["envoy"]["admin"])

    async def inbound_handshakes(self) -> int:
        """TLS handshakes reviews' sidecar completed on its inbound listener."""
        port = self.inbound.rsplit(":", 1)[1]
        async with self.admin(self.reviews, "default/reviews-1") as envoy:
            stats = await envoy.stats(r"ssl\.handshake$")
        return sum(
            v
            for k, v in stats.items()
            if k.startswith("listener.") and k.endswith(f"_{port}.ssl.handshake")
        )

    async def caller_handshakes(self) -> int:
        async with self.admin(self.web, "default/web-1") as envoy:
            stats = await envoy.stats(r"^cluster\.outbound\|default/reviews\|http\.ssl\.handshake$")
        return sum(stats.values())

    def xfcc_seen(self, path: str = "/load") -> list[str]:
        """The SPIFFE ids in the XFCC of the last request for ``path`` reviews' app got."""
        last = [r for r in self.reviews_app.seen if r.path == path][-1:]
        return xfcc_uris(last[0].headers) if last else []


def xfcc_uris(headers: dict[str, str]) -> list[str]:
    value = headers.get("x-forwarded-client-cert", "")
    return [
        part.split("=", 1)[1]
        for element in value.split(",")
        for part in element.split(";")
        if part.startswith("URI=")
    ]


def _workload(name: str, service: str, app: HttpBackend, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "service": service,
        "appAddress": app.address[0],
        "appPort": app.address[1],
        **extra,
    }


async def _join(h: AgentHandle) -> None:
    """``gossamer agent join`` with a join token made with the operator token (if the
    control plane wrote one: REST authentication)."""
    written = getattr(h.app, "admin_token_written", None)
    headers = {"Authorization": f"Bearer {written.read_text().strip()}"} if written else {}
    # the API may be served over TLS, with the mesh CA's certificate
    trusted = ssl.create_default_context(cadata=h.app.trust_bundle_pem().decode())
    async with httpx.AsyncClient(base_url=h.app.api_url, trust_env=False, verify=trusted) as client:
        r = await client.post(
            "/v1/tokens",
            json={"ttlSeconds": 600, "scope": {"anyService": True, "anyNamespace": True}},
            headers=headers,
        )
    assert r.status_code == 200, r.text
    xds = f"{h.app.xds_addr[0]}:{h.app.xds_addr[1]}"
    code, out = await run_cli(
        "agent", "join", "--server", h.app.api_url, "--token", str(r.json()["token"]),
        "--state-dir", str(h.state_dir), "--host", h.host, "--xds", xds,
    )  # fmt: skip
    assert code == 0, out


@contextlib.asynccontextmanager
async def two_hosts(
    tmp_path: Path, manifests: str, *, reviews_app_port: int | None = None, **settings: Any
) -> AsyncIterator[Mesh]:
    """A control plane with ``manifests`` applied, then web's and reviews' agents;
    ``reviews_app_port``: reviews-1's app is another one the test runs on REVIEWS_HOST
    (e.g. a TCP echo) instead of the HTTP backend; ``settings``: the control plane's
    (``running_control_plane``, e.g. ``telemetry``)."""
    other_app = {"appPort": reviews_app_port} if reviews_app_port else {}
    async with (
        running_control_plane(tmp_path / "cp", **settings) as app,
        HttpBackend("web-1", host=WEB_HOST) as web_app,
        HttpBackend("reviews-1", host=REVIEWS_HOST) as reviews_app,
    ):
        await apply_yaml(app, manifests, wait=False)
        web = AgentHandle(
            app, "host-web", WEB_HOST, tmp_path / "web",
            [_workload("web-1", "web", web_app, dependencies=[{"service": "reviews"}])],
        )  # fmt: skip
        reviews = AgentHandle(
            app, "host-reviews", REVIEWS_HOST, tmp_path / "reviews",
            [_workload("reviews-1", "reviews", reviews_app, **other_app)],
        )  # fmt: skip
        async with agents(web, reviews):
            for h in (web, reviews):
                await _join(h)
                await h.start()
            for h in (web, reviews):
                await h.wait_running()
            env = await web.env()
            inbound = reviews.status()["workloads"]["default/reviews-1"]["inbound"]
            yield Mesh(app, web, reviews, reviews_app, f"http://{env['REVIEWS_ADDR']}", inbound)


async def wait_served(mesh: Mesh) -> None:
    """Until a request through web's sidecar reaches reviews' app."""

    async def answered() -> bool:
        async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
            try:
                r = await client.get(f"{mesh.outbound}/first")
            except httpx.TransportError:
                return False
        return r.status_code == 200

    await wait_until(answered, timeout=60, what="web's sidecar reaching reviews")


def foreign_client(tmp_path: Path) -> ssl.SSLContext:
    """A TLS client presenting web's SPIFFE id in a certificate of *another* CA."""
    other = MeshCa.create(tmp_path / "other-ca")
    chain, key, _ = other.issue(WEB_ID)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test checks the server refuses *us*
    (tmp_path / "foreign.pem").write_bytes(chain)
    (tmp_path / "foreign.key").write_bytes(key)
    ctx.load_cert_chain(tmp_path / "foreign.pem", tmp_path / "foreign.key")
    return ctx


async def refuses(url: str, verify: ssl.SSLContext | bool = False) -> bool:
    """Does ``url`` refuse us (no HTTP answer)?

    Under TLS 1.3 the client's handshake completes before the server has checked the
    client's certificate, so the server's alert arrives on the first read, which httpx
    raises as a bare ``ssl.SSLError`` rather than a ``TransportError``.
    """
    async with httpx.AsyncClient(timeout=5, trust_env=False, verify=verify) as client:
        try:
            await client.get(url)
        except (httpx.TransportError, ssl.SSLError):
            return True
    return False
