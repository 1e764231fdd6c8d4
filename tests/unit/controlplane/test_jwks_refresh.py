"""The control plane keeps the keys of ``jwks.uri`` issuers (``controlplane.jwks_refresh``),
on a real plane over the memory store, its identity provider a ``httpx.MockTransport`` and
its clock a number the test moves: the first fetch stores the keys; nothing is fetched
before it is due; a rotation is stored at the next refresh; a failing provider leaves the
last keys and is retried sooner (1 s, doubling, at most the interval); an apply of the Mesh
fetches at once; an issuer dropped from the Mesh loses its record."""

from __future__ import annotations

import logging

import httpx
import pytest

from gossamer.controlplane.incremental import endpoint_change
from gossamer.controlplane.jwks_fetch import JwksFetcher
from gossamer.controlplane.jwks_refresh import JwksRefresher, retry_after
from gossamer.controlplane.plane import ControlPlane
from gossamer.model import parse_yaml
from gossamer.model.internal import FetchedJwks, fetched_jwks_key
from gossamer.testing.controlplane import memory_control_plane
from gossamer.testing.jwt_tokens import TokenIssuer

ISSUER = "https://idp.example"
URI = "https://idp.example/jwks.json"
A, B = TokenIssuer(ISSUER, kid="a"), TokenIssuer(ISSUER, kid="b")


def _mesh(*issuers: str, interval: str = "60s") -> str:
    jwt = "".join(
        f"\n    - {{issuer: '{i}', jwks: {{uri: '{URI}?{n}', refreshInterval: {interval}}}}}"
        for n, i in enumerate(issuers)
    )
    return f"""
apiVersion: gossamer.dev/v1
kind: Mesh
metadata: {{name: default}}
spec:
  authentication:
    jwt: {jwt or "[]"}
"""


class Idp:
    """What the identity provider answers now (None: it is down), and how often it was asked."""

    def __init__(self) -> None:
        self.keys: str | None = A.jwks()
        self.asked = 0

    def fetcher(self) -> JwksFetcher:
        def handle(request: httpx.Request) -> httpx.Response:
            self.asked += 1
            if self.keys is None:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(200, text=self.keys)

        return JwksFetcher(transport=httpx.MockTransport(handle))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _stored(plane: ControlPlane, issuer: str = ISSUER) -> str | None:
    assert plane.model is not None
    record = plane.model.resources.get(fetched_jwks_key(issuer))
    return record.spec.jwks if isinstance(record, FetchedJwks) else None


def test_retries_come_sooner_doubling_up_to_the_interval() -> None:
    assert [retry_after(n, 300) for n in (1, 2, 3, 6, 7, 50)] == [1, 2, 4, 32, 60, 60]
    assert retry_after(5, 10) == 10


@pytest.mark.asyncio
async def test_keys_are_fetched_kept_and_rotated(caplog: pytest.LogCaptureFixture) -> None:
    idp, clock = Idp(), Clock()
    async with memory_control_plane() as plane:
        refresher = JwksRefresher(plane, idp.fetcher(), clock=clock)
        await plane.apply(parse_yaml(_mesh(ISSUER), "mesh.yaml"))
        await refresher.refresh()
        assert _stored(plane) == A.jwks()
        assert refresher.next_in() == 60
        revision = plane.model.revision if plane.model else 0
        # not due: nothing fetched; due, same keys: nothing written
        await refresher.refresh()
        assert idp.asked == 1
        clock.now += 60
        await refresher.refresh()
        assert idp.asked == 2 and plane.model is not None and plane.model.revision == revision
        # the provider rotates: stored at the next refresh
        idp.keys = B.jwks()
        clock.now += 60
        await refresher.refresh()
        assert _stored(plane) == B.jwks()
        # the provider down: the keys stay; retried after 1 s, 2 s, 4 s
        idp.keys = None
        caplog.set_level(logging.WARNING, "gossamer.controlplane.jwks_refresh")
        clock.now += 60
        for wait in (1, 2, 4):
            await refresher.refresh()
            assert refresher.next_in() == wait
            clock.now += wait
        assert _stored(plane) == B.jwks()
        (state,) = refresher.states()
        assert state.failures == 3 and state.failing_since is not None
        assert "ConnectError" in (state.error or "")
        last = caplog.records[-1].getMessage()
        assert "failing since" in last and "(3 attempts)" in last
        assert "proxies keep the keys fetched at" in last and ISSUER in last
        # back: fetched again, the schedule back to the interval
        idp.keys = B.jwks()
        await refresher.refresh()
        assert state.failures == 0 and state.failing_since is None
        assert refresher.next_in() == 60


@pytest.mark.asyncio
async def test_until_a_first_fetch_succeeds_the_issuer_has_no_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    idp, clock = Idp(), Clock()
    idp.keys = None
    caplog.set_level(logging.WARNING, "gossamer.controlplane.jwks_refresh")
    async with memory_control_plane() as plane:
        refresher = JwksRefresher(plane, idp.fetcher(), clock=clock)
        await plane.apply(parse_yaml(_mesh(ISSUER), "mesh.yaml"))
        await refresher.refresh()
        assert _stored(plane) is None
        assert "the issuer has no keys yet: its tokens are refused (401)" in caplog.text


@pytest.mark.asyncio
async def test_an_apply_of_the_mesh_fetches_at_once_and_a_dropped_issuer_loses_its_keys() -> None:
    idp, clock = Idp(), Clock()
    other = "https://other.example"
    async with memory_control_plane() as plane:
        refresher = JwksRefresher(plane, idp.fetcher(), clock=clock)
        await plane.apply(parse_yaml(_mesh(ISSUER, other), "mesh.yaml"))
        await refresher.refresh()
        assert idp.asked == 2 and _stored(plane) and _stored(plane, other)
        # a re-apply (here: another interval) fetches every uri now, not when due
        await plane.apply(parse_yaml(_mesh(ISSUER, interval="90s"), "mesh.yaml"))
        await refresher.refresh()
        assert idp.asked == 3
        assert _stored(plane) == A.jwks() and _stored(plane, other) is None
        assert refresher.next_in() == 90
        assert [s.issuer for s in refresher.states()] == [ISSUER]


@pytest.mark.asyncio
async def test_new_keys_rebuild_the_proxies_rather_than_patch_endpoints() -> None:
    """A changed ``FetchedJwks`` is structural: a round that saw only it must not take it
    for an endpoint-only change (the proxies would keep the old keys)."""
    idp, clock = Idp(), Clock()
    async with memory_control_plane() as plane:
        refresher = JwksRefresher(plane, idp.fetcher(), clock=clock)
        await plane.apply(parse_yaml(_mesh(ISSUER), "mesh.yaml"))
        before = plane.model
        await refresher.refresh()
        assert before is not None and plane.model is not None
        assert endpoint_change(before, plane.model) is None
