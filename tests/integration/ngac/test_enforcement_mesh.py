"""The NGAC graph enforced by real Envoys, per route, with strict mTLS (issue 11, compiled
mode): real agents, sidecars and the control plane's engine (``mtls_mesh.two_hosts``).

web calls reviews through its sidecar; other callers present certificates the mesh CA
signed for their SPIFFE ids, straight to reviews' inbound. The policy is ``ngac_mesh.policy``.
"""

from __future__ import annotations

import random
import ssl
from pathlib import Path

import pytest
from tests.integration.agent.mtls_mesh import WEB_ID, Mesh, refuses, two_hosts, wait_served

from gossamer.authz.requests import decide
from gossamer.authz.rights import HTTP_METHODS
from gossamer.polling import wait_until
from gossamer.testing.controlplane import apply_yaml
from gossamer.testing.rbac_eval import evaluate

from .ngac_mesh import (
    CRON_ID,
    INBOUND_STATS,
    NO_ORDERS,
    OTHER_ID,
    REVIEWS,
    RawHttp,
    callers,
    inbound_table,
    manifests,
    policy,
    reviews_stats,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

LISTENER_STATS = r"^listener_manager\.(listener_modified|total_listeners_draining)$"
#: raw forms of /admin that a path rule must not be bypassed with
ADMIN_VARIANTS = [
    "//admin", "/x/../admin", "/./admin", "/admin/", "/%2Fadmin", "/x%2F..%2Fadmin",
    "/%61dmin", "/%2e%2e/admin", "/admin#fragment", "/admin?q=1", "/admin/users",
]  # fmt: skip


def _admin_reached(mesh: Mesh) -> list[str]:
    return [
        p for p in mesh.reviews_app.requests_by_path if p == "/admin" or p.startswith("/admin/")
    ]


async def _wait_enforced(mesh: Mesh, ctx: ssl.SSLContext) -> None:
    """Until reviews' sidecar denies ``ctx``'s caller (granted nothing)."""

    async def denied() -> bool:
        conn = await RawHttp.open(mesh.inbound, ctx)
        try:
            status, _ = await conn.request("GET", "/probe")
        finally:
            await conn.close()
        return status == 403

    await wait_until(denied, timeout=60, what="reviews' sidecar enforcing the graph")
    # and strict mTLS in force (its last listener change)
    await wait_until(
        lambda: refuses(f"http://{mesh.inbound}/plain"),
        timeout=90,
        what="reviews' sidecar refusing plaintext (strict enforced)",
    )


async def _drained(mesh: Mesh) -> dict[str, int]:
    """reviews' listener stats once the listeners replaced while the mesh came up (strict
    mTLS is the last change) have finished draining (``--drain-time-s``)."""
    stats: dict[str, int] = {}

    async def drained() -> bool:
        stats.update(await reviews_stats(mesh, LISTENER_STATS))
        return stats["listener_manager.total_listeners_draining"] == 0

    await wait_until(drained, timeout=60, interval=0.2, what="reviews' replaced listeners drained")
    return stats


async def test_enforce_audit_and_a_prohibition_on_an_open_connection(tmp_path: Path) -> None:
    async with two_hosts(tmp_path, manifests("enforce") + "---" + policy()) as mesh:
        await wait_served(mesh)
        ctx = callers(tmp_path, OTHER_ID, WEB_ID)
        await _wait_enforced(mesh, ctx[OTHER_ID])
        before = await _drained(mesh)

        # through web's sidecar (web is granted GET outside /admin), on one connection
        web = await RawHttp.open(mesh.outbound)
        try:
            assert (await web.request("GET", "/api/orders/7"))[0] == 200
            assert (await web.request("POST", "/api/orders/7"))[0] == 403  # method
            status, body = await web.request("GET", "/admin/users")  # prohibited prefix
            assert status == 403, body
            assert (await web.request("GET", "/admin-panel"))[0] == 200  # not under /admin

            # a prohibition applied and waited for: the next request on this connection
            await apply_yaml(mesh.app, policy(NO_ORDERS), wait=True)
            assert (await web.request("GET", "/api/orders/7"))[0] == 403
            assert (await web.request("GET", "/other"))[0] == 200
            await apply_yaml(mesh.app, policy(), wait=True)
            assert (await web.request("GET", "/api/orders/7"))[0] == 200
        finally:
            await web.close()

        # an identity the graph grants nothing: 403 before the app
        other = await RawHttp.open(mesh.inbound, ctx[OTHER_ID])
        try:
            served = mesh.reviews_app.requests
            assert (await other.request("GET", "/"))[0] == 403
            assert mesh.reviews_app.requests == served
        finally:
            await other.close()

        # raw variants of the denied prefix never reach the app
        for variant in ADMIN_VARIANTS:
            conn = await RawHttp.open(mesh.inbound, ctx[WEB_ID])
            try:
                status, _ = await conn.request("GET", variant)
            except (OSError, EOFError, TimeoutError):
                status = 0  # closed on us: not served either
            finally:
                await conn.close()
            assert status != 200, variant
        assert _admin_reached(mesh) == []

        mid = await reviews_stats(mesh, LISTENER_STATS)
        assert mid == before
        # audit: allowed, and counted as a shadow denial
        await apply_yaml(
            mesh.app,
            manifests("enforce").replace(
                "spec: {ports: [{name: http, port: 9080}]}",
                "spec: {ports: [{name: http, port: 9080}], authorization: {mode: audit}}",
            ),
            wait=True,
        )
        stat = f"{INBOUND_STATS}rbac.shadow_denied"
        shadow = (await reviews_stats(mesh, stat)).get(stat, 0)
        other = await RawHttp.open(mesh.inbound, ctx[OTHER_ID])
        try:
            assert (await other.request("GET", "/audited"))[0] == 200
        finally:
            await other.close()
        assert mesh.reviews_app.requests_by_path["/audited"] == 1
        assert (await reviews_stats(mesh, stat))[stat] == shadow + 1

        # none of it changed or drained a listener
        after = await reviews_stats(mesh, LISTENER_STATS)
        assert (
            after["listener_manager.listener_modified"]
            == (before["listener_manager.listener_modified"])
        )
        assert after["listener_manager.total_listeners_draining"] == 0


async def test_envoy_the_compiled_table_and_the_engine_agree(tmp_path: Path) -> None:
    """A sample of random requests through Envoy equals the pure-Python reading of the table
    Envoy holds (``testing.rbac_eval``) and the engine; 10,000 more compare the reading with
    the engine."""
    async with two_hosts(tmp_path, manifests("enforce") + "---" + policy()) as mesh:
        await wait_served(mesh)
        ctx = callers(tmp_path, OTHER_ID, WEB_ID, CRON_ID)
        await _wait_enforced(mesh, ctx[OTHER_ID])
        table = await inbound_table(mesh)
        authz = mesh.app.authz
        assert authz is not None
        engine = authz.engine
        rng = random.Random(11)
        paths = ["/", "/admin", "/admin/x", "/admin-x", "/api", "/api/orders", "/api/orders/1",
                 "/api/orders-x", "/x/y?admin", "/api/orders?x=/admin"]  # fmt: skip
        methods = [m for m in HTTP_METHODS if m not in ("HEAD", "CONNECT")]
        conns = {i: await RawHttp.open(mesh.inbound, c) for i, c in ctx.items()}
        try:
            for _ in range(150):
                who, method, path = rng.choice(list(ctx)), rng.choice(methods), rng.choice(paths)
                status, _ = await conns[who].request(method, path)
                read = evaluate(table, who, method, path).outcome
                allowed = decide(engine.graph, engine.decider, who, REVIEWS, method, path)
                assert (status != 403, read == "allow") == (allowed, allowed), (who, method, path)
        finally:
            for c in conns.values():
                await c.close()
        users = [WEB_ID, CRON_ID, OTHER_ID, WEB_ID.replace("/web", "/nobody")]
        for _ in range(10_000):
            who, method, path = rng.choice(users), rng.choice(HTTP_METHODS), rng.choice(paths)
            allowed = decide(engine.graph, engine.decider, who, REVIEWS, method, path)
            assert (evaluate(table, who, method, path).outcome == "allow") == allowed
