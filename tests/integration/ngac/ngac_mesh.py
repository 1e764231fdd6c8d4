"""Helpers for the NGAC enforcement tests through real agents and Envoys (strict mTLS):
the policies, callers with certificates the mesh CA signed for chosen SPIFFE ids, a raw
HTTP/1.1 keep-alive client (paths sent exactly as written), and reading back the route
table reviews' Envoy holds."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from pathlib import Path
from typing import Self

from envoy.config.route.v3 import route_pb2
from google.protobuf import json_format
from tests.integration.agent.mtls_mesh import TD, WEB_ID, Mesh
from tests.integration.agent.test_strict_refusals import MeshCaKey, client_context, uri

from gossamer.types import spiffe_id

OTHER_ID = spiffe_id(TD, "default", "other")
CRON_ID = spiffe_id(TD, "default", "cron")
REVIEWS = ("default", "reviews")
INBOUND_STATS = "http.inbound|http."


def manifests(mode: str = "enforce") -> str:
    """Mesh (strict mTLS, authorization ``mode``), web and reviews."""
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec: {{trustDomain: {TD}, mtls: {{mode: strict}}, authorization: {{mode: {mode}}}}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 8080}}]}}
---
apiVersion: gossamer.dev/v1
kind: Service
metadata: {{name: reviews}}
spec: {{ports: [{{name: http, port: 9080}}]}}
"""


def policy(*prohibitions: str) -> str:
    """web (frontends) may GET reviews except /admin; cron (batch) may do anything under
    /api/orders; other is a user with no grant. ``prohibitions``: more, as YAML flow maps."""
    extra = "".join(f"\n  - {p}" for p in prohibitions)
    return f"""
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {{name: shop}}
spec:
  policyClasses: [shop]
  userAttributes: {{frontends: [shop], batch: [shop], nobody: [shop]}}
  objectAttributes:
    apis: [shop]
    "svc:default/reviews": [apis]
    "svc:default/reviews:/admin": ["svc:default/reviews"]
    "svc:default/reviews:/api/orders": ["svc:default/reviews"]
  users: {{"{WEB_ID}": [frontends], "{CRON_ID}": [batch], "{OTHER_ID}": [nobody]}}
  associations:
  - {{userAttribute: frontends, target: apis, rights: [GET]}}
  - {{userAttribute: batch, target: "svc:default/reviews:/api/orders", rights: ["*r"]}}
  prohibitions:
  - {{name: no-admin, subject: frontends, rights: [GET, POST], include: ["svc:default/reviews:/admin"]}}{extra}
"""  # noqa: E501


NO_ORDERS = '{name: no-orders, subject: frontends, rights: [GET], include: ["svc:default/reviews:/api/orders"]}'  # noqa: E501


def callers(tmp_path: Path, *ids: str) -> dict[str, ssl.SSLContext]:
    """TLS client contexts presenting certificates the mesh CA signed for ``ids``."""
    ca = MeshCaKey.read(tmp_path / "cp")
    return {i: client_context(tmp_path, i.rsplit("/", 1)[1], ca.sign([uri(i)])) for i in ids}


class RawHttp:
    """One HTTP/1.1 keep-alive connection; requests go out exactly as written."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, address: str, ctx: ssl.SSLContext | None = None) -> Self:
        host, port = address.removeprefix("http://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx)
        return cls(reader, writer)

    async def request(self, method: str, target: str) -> tuple[int, bytes]:
        """(status, body) of ``method target``; the connection stays open."""
        head = f"{method} {target} HTTP/1.1\r\nHost: reviews\r\nContent-Length: 0\r\n\r\n"
        self.writer.write(head.encode())
        await self.writer.drain()
        async with asyncio.timeout(10):
            status_line = await self.reader.readuntil(b"\r\n")
            headers: dict[str, str] = {}
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = b""
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
            elif headers.get("transfer-encoding") == "chunked":
                while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
                    body += (await self.reader.readexactly(size + 2))[:-2]
                await self.reader.readuntil(b"\r\n")
        return int(status_line.split()[1]), body

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await self.writer.wait_closed()


async def reviews_stats(mesh: Mesh, regex: str) -> dict[str, int]:
    async with mesh.admin(mesh.reviews, "default/reviews-1") as envoy:
        return await envoy.stats(regex)


async def inbound_table(mesh: Mesh) -> route_pb2.RouteConfiguration:
    """The ``inbound|http`` route table reviews' Envoy holds (its config dump)."""
    async with mesh.admin(mesh.reviews, "default/reviews-1") as envoy:
        dump = await envoy.config_dump(resource="dynamic_route_configs")
    for entry in dump["configs"]:
        config = dict(entry["route_config"])
        if config.get("name") == "inbound|http":
            config.pop("@type", None)
            return json_format.ParseDict(config, route_pb2.RouteConfiguration())
    raise LookupError("reviews' Envoy holds no inbound|http route table")
