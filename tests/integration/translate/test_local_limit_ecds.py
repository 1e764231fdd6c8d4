"""Local rate-limit buckets over ECDS, through real Envoys (a delta-xDS caller and a SotW one,
the callee SotW): the buckets arrive as each HCM's filter config (a budget holds only if
it did), and changing a ``rateLimit`` changes that ECDS resource and nothing else: no
listener is modified (drained), the changed budget holds at once and starts full, and a
bucket of another HCM (the callee's inbound TrafficPolicy bucket) is not refilled. The
other buckets of the changed HCM start full too: Envoy builds a changed filter config's
buckets anew (measured here, documented in docs/resources.md)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from route_rules_mesh import CLIENT, manifests

from gossamer.envoy.proxy import EnvoyProcess
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.backends import HttpBackend
from gossamer.testing.controlplane import apply_manifests, mesh_envoy, running_control_plane
from gossamer.testing.mesh import route
from gossamer.testing.ports import free_port
from gossamer.types import API_VERSION, Manifest, ProxyIdentity

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

LISTENERS = r"^listener_manager\.(listener_modified|listener_in_place_updated|listener_removed)$"
#: the callee's inbound budget (every request through the caller spends one)
INBOUND = 100


def limited(name: str, requests: int) -> dict[str, Any]:
    return {
        "name": name,
        "matches": [{"path": {"prefix": f"/{name}"}}],
        "destinations": [{"service": "reviews"}],
        "rateLimit": {"requests": requests, "per": "1h"},  # no refill during the test
    }


def inbound_policy() -> Manifest:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrafficPolicy",
        "metadata": {"name": "reviews"},
        "spec": {"service": "reviews", "rateLimit": {"requests": INBOUND, "per": "1h"}},
    }


@contextlib.asynccontextmanager
async def served(
    tmp_path: Path, rules: list[dict[str, Any]], *, delta: bool
) -> AsyncIterator[tuple[ControlPlaneApp, EnvoyProcess, str]]:
    """web-1's sidecar (delta or SotW) calling reviews behind its own (SotW) sidecar."""
    local = free_port(CLIENT)
    async with (
        HttpBackend("reviews", host="127.0.0.3") as reviews,
        HttpBackend("shadow", host="127.0.0.4") as shadow,
        running_control_plane(tmp_path) as app,
    ):
        ms = [*manifests(local, reviews.address[1], shadow.address[1], rules), inbound_policy()]
        await apply_manifests(app, ms, wait=False)
        caller = mesh_envoy(app, ProxyIdentity("sidecar", "default", "web-1"), delta=delta)
        callee = mesh_envoy(app, ProxyIdentity("sidecar", "default", "reviews-1"))
        async with caller, callee, httpx.AsyncClient(timeout=5) as probe:
            url = f"http://{CLIENT}:{local}"

            async def ready() -> bool:
                try:
                    r = await probe.get(url + "/ready-probe")
                except httpx.TransportError:
                    return False
                return r.headers.get("x-backend") == "reviews"

            await wait_until(ready, timeout=30, what="the mesh to serve reviews")
            yield app, caller, url


async def _inbound_remaining(c: httpx.AsyncClient, url: str) -> int:
    """What is left of the callee's inbound bucket (its x-ratelimit-* headers pass through
    the caller, whose catch-all route is not limited)."""
    r = await c.get(url + "/free")
    assert r.status_code == 200 and r.headers["x-ratelimit-limit"] == str(INBOUND)
    return int(r.headers["x-ratelimit-remaining"])


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
async def test_a_budget_change_is_an_ecds_push(tmp_path: Path, delta: bool) -> None:
    rules = [limited("alpha", 3), limited("beta", 3)]
    async with (
        served(tmp_path, rules, delta=delta) as (app, caller, url),
        httpx.AsyncClient(timeout=10) as c,
    ):
        # The budgets came over ECDS: they hold.
        alpha = [(await c.get(url + "/alpha")).status_code for _ in range(4)]
        assert alpha == [200, 200, 200, 429]
        assert (await c.get(url + "/beta")).status_code == 200
        inbound = await _inbound_remaining(c, url)
        assert inbound < INBOUND
        listeners = await caller.stats(LISTENERS)
        assert listeners["listener_manager.listener_modified"] == 0, listeners
        ecds = f"extension_config_discovery.http_filter.{_filter_of(url)}.update_success"
        pushes = (await caller.stats(ecds))[ecds]

        changed = [rules[0], limited("beta", 6)]
        await apply_manifests(app, [route("reviews", "reviews", changed)])

        # The new budget holds at once (apply waited for the ACK) and starts full: one
        # request was spent of the old one.
        answers = [await c.get(url + "/beta") for _ in range(7)]
        assert [r.status_code for r in answers] == [200] * 6 + [429]
        # (the callee's inbound limit answers too: "100, 6")
        assert "6" in answers[0].headers["x-ratelimit-limit"].split(", ")
        assert await caller.stats(LISTENERS) == listeners, "a listener changed"
        assert (await caller.stats(ecds))[ecds] == pushes + 1
        # Another HCM's bucket (the callee's inbound one) kept its count.
        assert await _inbound_remaining(c, url) < inbound
        # The changed HCM's other bucket was built anew too (Envoy's behaviour).
        alpha = [(await c.get(url + "/alpha")).status_code for _ in range(4)]
        assert alpha == [200, 200, 200, 429]


def _filter_of(url: str) -> str:
    """The caller's outbound HCM's local rate-limit filter (as Envoy's stats name it)."""
    host, port = url.removeprefix("http://").split(":")
    return f"envoy.filters.http.local_ratelimit|outbound|{host}_{port}"
