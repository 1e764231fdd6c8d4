"""Edge hardening seen from a client: ``x-envoy-*`` headers from outside neither reach a
service nor steer Envoy, invalid messages get a 400, and a path reaches a service only as
the normalised path the routing decision was made on (CVE-2019-9900 / 9901 class)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.integration.gateway.gateways import (
    RunningGateway,
    plain_backend,
    running_gateway,
    wait_served,
)

from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_yaml, running_control_plane
from gossamer.testing.ports import free_port

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.slow]

HOST = "shop.example.com"
TOKEN = "let-me-in"


def mesh(public: tuple[str, int], admin: tuple[str, int], gw_port: int) -> str:
    services = [plain_backend(name, at) for name, at in (("public", public), ("admin", admin))]
    return (
        "---".join(services)
        + f"""---
apiVersion: gossamer.dev/v1
kind: Gateway
metadata: {{name: edge}}
spec: {{port: {gw_port}}}
---
apiVersion: gossamer.dev/v1
kind: Route
metadata: {{name: edge}}
spec:
  gateways: [edge]
  hosts: [{HOST}]
  rules:
  - matches: [{{path: {{prefix: /admin/}}, headers: [{{name: x-admin-token, exact: {TOKEN}}}]}}]
    destinations: [{{service: admin}}]
  - matches: [{{path: {{prefix: /public/}}}}, {{path: {{prefix: /status/}}}},
              {{path: {{prefix: /delay/}}}}]
    destinations: [{{service: public}}]
    retries: {{attempts: 0}}  # so a retry could only come from the client's x-envoy headers
"""
    )


@dataclass
class Edge:
    gw: RunningGateway
    public: HttpBackend
    admin: HttpBackend
    client: httpx.AsyncClient


@contextlib.asynccontextmanager
async def edge(tmp_path: Path) -> AsyncIterator[Edge]:
    async with (
        HttpBackend("public", host="127.0.0.3") as public,
        HttpBackend("admin", host="127.0.0.4") as admin,
        running_control_plane(tmp_path / "cp") as app,
    ):
        gw_port = free_port()
        await apply_yaml(app, mesh(public.address, admin.address, gw_port), wait=False)
        async with (
            running_gateway(app, tmp_path / "gw", gw_port) as gw,
            httpx.AsyncClient(timeout=10, trust_env=False, follow_redirects=False) as client,
        ):
            await wait_served(client, gw.url + "/public/", HOST)
            yield Edge(gw, public, admin, client)


FROM_OUTSIDE = {
    "x-envoy-retry-on": "5xx",
    "x-envoy-max-retries": "3",
    "x-envoy-upstream-rq-timeout-ms": "1",
    "x-envoy-upstream-rq-per-try-timeout-ms": "1",
    "x-envoy-force-trace": "1",
    "X-Envoy-Internal": "true",
    "x-envoy-original-path": "/admin/",
    "x-envoy-decorator-operation": "spoofed",
    "x-envoy-downstream-service-cluster": "spoofed",
    "x-envoy-external-address": "6.6.6.6",
    "x-envoy-made-up": "anything",
}


async def test_x_envoy_headers_from_outside_never_reach_a_service_nor_steer_envoy(
    tmp_path: Path,
) -> None:
    async with edge(tmp_path) as e:
        r = await e.client.get(e.gw.url + "/public/hello", headers={"host": HOST, **FROM_OUTSIDE})
        assert r.status_code == 200
        seen = r.json()["headers"]
        envoy_headers = {k: v for k, v in seen.items() if k.startswith("x-envoy-")}
        # Only what the gateway itself sets: the client address it saw on the connection.
        assert envoy_headers == {"x-envoy-external-address": "127.0.0.1"}
        assert not any(k.startswith("x-envoy-") for k in r.headers)  # nothing leaks out

        # A forced retry did not happen: the failing backend was asked exactly once.
        r = await e.client.get(e.gw.url + "/status/503", headers={"host": HOST, **FROM_OUTSIDE})
        assert r.status_code == 503
        assert e.public.requests_by_path["/status/503"] == 1

        # A 1 ms timeout asked for by the client was not applied.
        r = await e.client.get(e.gw.url + "/delay/200", headers={"host": HOST, **FROM_OUTSIDE})
        assert r.status_code == 200

        # x-envoy-original-path did not route to the restricted rule.
        assert e.admin.requests == 0


async def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@pytest.mark.parametrize(
    "header",
    [b"X-Bad: a\x00b", b"x_admin_token: " + TOKEN.encode(), b"X Bad: 1"],
    ids=["nul-byte", "underscore-name", "space-in-name"],
)
async def test_invalid_headers_are_rejected_with_400(tmp_path: Path, header: bytes) -> None:
    async with edge(tmp_path) as e:
        before = e.public.requests
        request = (
            b"GET /public/x HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\n" + header + b"\r\n\r\n"
        )
        status_line = await _raw(e.gw.url, request)
        assert status_line.startswith(b"HTTP/1.1 400"), status_line
        assert e.public.requests == before


async def test_a_bare_cr_in_a_header_never_reaches_a_service(tmp_path: Path) -> None:
    async with edge(tmp_path) as e:
        request = b"GET /public/cr HTTP/1.1\r\nHost: " + HOST.encode() + b"\r\nX-Bad: a\rb\r\n\r\n"
        status_line = await _raw(e.gw.url, request)
        # Envoy 1.40 drops the CR (RFC 9112 allows rejecting it or replacing it)
        if not status_line.startswith(b"HTTP/1.1 400"):
            assert status_line.startswith(b"HTTP/1.1 200"), status_line
            assert "\r" not in e.public.seen[-1].headers["x-bad"]


# (path sent, what may happen): "admin" / "public" = that backend answers and sees exactly
# the normalised path given; "redirect" = the client is sent to the unescaped path; "404" =
# no route for the normalised path.
TRICKY = [
    ("/public/../admin/users", {"admin": "/admin/users"}, "404"),
    ("//admin/users", {"admin": "/admin/users"}, "404"),
    ("/public/%2e%2e/admin/users", {"admin": "/admin/users"}, "404"),
    ("/public/%2E%2E/admin/users", {"admin": "/admin/users"}, "404"),
    ("/public/./.././admin/users", {"admin": "/admin/users"}, "404"),
    # dot segments first (the empty segment goes), then slashes merge: still under /public/
    ("/public//../admin/users", {"public": "/public/admin/users"}, "public"),
    ("/public/%2e%2e%2fadmin/users", None, "redirect"),
    ("/public/..%2Fadmin/users", None, "redirect"),
    ("/public%2F..%2Fadmin/users", None, "redirect"),
    ("/public/..%5Cadmin/users", None, "redirect"),
    ("/admin/../public/ok", {"public": "/public/ok"}, "public"),
]


@pytest.mark.parametrize(
    ("path", "with_token", "without_token"), TRICKY, ids=[p for p, _, _ in TRICKY]
)
async def test_a_path_is_routed_and_forwarded_only_in_its_normalised_form(
    tmp_path: Path, path: str, with_token: dict[str, str] | None, without_token: str
) -> None:
    async with edge(tmp_path) as e:
        url = e.gw.url + path
        # Without the token the restricted rule does not match: never the admin service.
        r = await e.client.get(url, headers={"host": HOST})
        if without_token == "404":
            assert (r.status_code, "x-backend" in r.headers) == (404, False)
        elif without_token == "redirect":
            assert 300 <= r.status_code < 400 and "x-backend" not in r.headers
            assert "%2f" not in r.headers["location"].lower()
            assert "%5c" not in r.headers["location"].lower()
        else:
            assert r.headers.get("x-backend") == without_token
        assert e.admin.requests == 0

        r = await e.client.get(url, headers={"host": HOST, "x-admin-token": TOKEN})
        if with_token is None:
            assert 300 <= r.status_code < 400 and "x-backend" not in r.headers
        else:
            ((backend, normalised),) = with_token.items()
            assert r.status_code == 200 and r.json()["backend"] == backend
            assert r.json()["path"] == normalised
        # Whatever the backends saw, they saw it normalised.
        for b in (e.public, e.admin):
            for seen in b.seen:
                assert "/../" not in seen.path and "//" not in seen.path, seen.path
                assert "%2" not in seen.path.lower() and "%5c" not in seen.path.lower()
