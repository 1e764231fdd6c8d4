"""mTLS end to end through real agents: the agent's bootstrap says its Envoy gets secrets
over SDS (node metadata ``gossamer.sds``), the agent reports what its Envoys ACKed over
SDS with its heartbeat, and the control plane turns each hop to mTLS only once both sides
can take it (docs/security.md, "mTLS modes"). Every request of each test's bounded load
through web's sidecar is counted: none may fail."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gossamer.polling import wait_until
from gossamer.testing.controlplane import apply_yaml

from .agents import PACED, Load
from .mtls_mesh import (
    WEB_ID,
    Mesh,
    foreign_client,
    refuses,
    services,
    two_hosts,
    wait_served,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio, pytest.mark.timeout(400)]


@contextlib.asynccontextmanager
async def load_through(mesh: Mesh, max_seconds: float = 200.0) -> AsyncIterator[Load]:
    """Sequential requests through web's sidecar to reviews until the block ends."""
    load = Load(f"{mesh.outbound}/load", max_seconds=max_seconds, pace=PACED)
    task = asyncio.create_task(load.run())
    try:
        yield load
    finally:
        load.stop()
        await task
    print(f"load: sent {load.ok + len(load.failed)}, failed {len(load.failed)}")


async def _mtls_reached(mesh: Mesh) -> bool:
    return WEB_ID in mesh.xfcc_seen() and await mesh.inbound_handshakes() > 0


async def test_permissive_hop_becomes_mtls_once_both_sidecars_are_ready(tmp_path: Path) -> None:
    async with two_hosts(tmp_path, services()) as mesh:
        await wait_served(mesh)
        async with load_through(mesh) as load:
            await wait_until(
                lambda: _mtls_reached(mesh), timeout=60, what="web -> reviews over mTLS"
            )
            mark = load.ok
            await wait_until(lambda: load.ok >= mark + 20, timeout=30, what="more requests")
        assert load.failed == []
        assert await mesh.caller_handshakes() > 0
        # every request since the switch carried web's verified identity
        assert mesh.xfcc_seen() == [WEB_ID]
        # permissive: a plaintext client straight to reviews' sidecar is still served
        assert not await refuses(f"http://{mesh.inbound}/plain")


async def test_off_to_strict_under_traffic_fails_no_request_and_refuses_outsiders(
    tmp_path: Path,
) -> None:
    async with two_hosts(tmp_path, services("off")) as mesh:
        await wait_served(mesh)
        async with load_through(mesh) as load:
            await wait_until(lambda: load.ok >= 20, timeout=30, what="plaintext traffic")
            assert await mesh.inbound_handshakes() == 0
            assert mesh.xfcc_seen() == []
            await apply_yaml(mesh.app, services("strict"), wait=False)
            # strict: plaintext to reviews' sidecar is refused once every caller sends mTLS
            await wait_until(
                lambda: refuses(f"http://{mesh.inbound}/plain"),
                timeout=60,
                what="reviews' sidecar refusing plaintext",
            )
            # (the request in flight may still be on a plaintext connection made before)
            await wait_until(
                lambda: _mtls_reached(mesh), timeout=30, what="web -> reviews over mTLS"
            )
            # ... and so is a client certificate from another CA, with web's SPIFFE id
            assert await refuses(f"https://{mesh.inbound}/foreign", foreign_client(tmp_path))
            mark = load.ok
            await wait_until(lambda: load.ok >= mark + 20, timeout=30, what="mesh traffic")
        assert load.failed == [], load.failed[:5]
        assert mesh.xfcc_seen() == [WEB_ID]


def _serving(mesh: Mesh) -> dict[str, str | None]:
    """The certificate serial each sidecar's Envoy ACKed over SDS (from its agent)."""
    out: dict[str, str | None] = {}
    for handle, key in ((mesh.web, "default/web-1"), (mesh.reviews, "default/reviews-1")):
        sds = handle.status()["workloads"][key].get("sds") or {}
        out[key] = sds.get("acked", {}).get("identity")
    return out


@pytest.mark.slow
async def test_certificates_rotating_every_minute_fail_no_request(tmp_path: Path) -> None:
    async with two_hosts(tmp_path, services(mesh="certificateTTL: 1m")) as mesh:
        await wait_served(mesh)
        async with load_through(mesh) as load:
            await wait_until(
                lambda: _mtls_reached(mesh), timeout=60, what="web -> reviews over mTLS"
            )
            first = _serving(mesh)
            assert all(first.values()), first
            seen: dict[str, set[str | None]] = {k: {v} for k, v in first.items()}

            def rotated_twice() -> bool:
                for key, serial in _serving(mesh).items():
                    seen[key].add(serial)
                return all(len(serials) >= 3 for serials in seen.values())

            # renewal at about half of the 1-minute lifetime: two rotations in ~75 s
            await wait_until(rotated_twice, timeout=120, interval=0.5, what="two rotations")
        assert load.failed == [], load.failed[:5]
        assert mesh.xfcc_seen() == [WEB_ID]
        print(f"identity serials served: { {k: len(v) for k, v in seen.items()} }")
