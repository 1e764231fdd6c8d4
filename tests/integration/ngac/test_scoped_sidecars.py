"""Proxies only see what they may call, and denials say why and which request (issue 11),
through real agents and Envoys with strict mTLS (``mtls_mesh.two_hosts``).

web's identity starts with no right on reviews (enforced): web's own sidecar answers 403
naming the request id and the mesh's access policy, reviews' app is never reached, and
web's config dump holds no cluster for reviews. A grant applied with ``--wait`` brings the
cluster and a 200; the revocation takes them away again; web's listeners never change. A
403 from reviews' RBAC carries the request id and the deciding attribute.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from tests.integration.agent.mtls_mesh import WEB_ID, Mesh, two_hosts

from gossamer.polling import wait_until
from gossamer.testing.controlplane import apply_yaml
from gossamer.translate.scoping import DENIAL

from .ngac_mesh import OTHER_ID, callers, manifests, policy

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

REVIEWS_CLUSTER = "outbound|default/reviews|http"
LISTENER_MODIFIED = "listener_manager.listener_modified"


def _no_web() -> str:
    """The policy with web in no user attribute: web holds no right anywhere."""
    text = policy()
    assert f'"{WEB_ID}": [frontends], ' in text
    return text.replace(f'"{WEB_ID}": [frontends], ', "")


async def _get(mesh: Mesh, request_id: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
        return await client.get(f"{mesh.outbound}/items", headers={"x-request-id": request_id})


async def _web_clusters(mesh: Mesh) -> set[str]:
    async with mesh.admin(mesh.web, "default/web-1") as envoy:
        dump = await envoy.config_dump(resource="dynamic_active_clusters")
    return {c["cluster"]["name"] for c in dump.get("configs", [])}


async def _web_listener_modified(mesh: Mesh) -> int:
    async with mesh.admin(mesh.web, "default/web-1") as envoy:
        return (await envoy.stats(f"^{LISTENER_MODIFIED}$"))[LISTENER_MODIFIED]


def _denial(r: httpx.Response, request_id: str) -> dict[str, object]:
    assert r.status_code == 403, r.text
    body: dict[str, object] = json.loads(r.text)
    assert body["request_id"] == request_id, body
    return body


async def test_a_caller_sees_only_what_it_may_call(tmp_path: Path) -> None:
    async with two_hosts(tmp_path, manifests("enforce") + "---" + _no_web()) as mesh:

        async def own_sidecar_denies() -> bool:
            try:
                r = await _get(mesh, "probe")
            except httpx.TransportError:
                return False  # web's sidecar not listening yet
            return r.status_code == 403 and DENIAL in r.text

        await wait_until(own_sidecar_denies, timeout=60, what="web's sidecar denying reviews")
        body = _denial(await _get(mesh, "n3-denied-1"), "n3-denied-1")
        reason = str(body["reason"])
        assert reason.startswith(DENIAL) and WEB_ID in reason and "svc:default/reviews" in reason
        assert mesh.reviews_app.requests == 0  # answered by web's own sidecar
        assert REVIEWS_CLUSTER not in await _web_clusters(mesh)
        modified = await _web_listener_modified(mesh)

        # granted: the cluster and the route arrive with the apply
        await apply_yaml(mesh.app, policy(), wait=True)
        r = await _get(mesh, "n3-granted")
        assert r.status_code == 200, r.text
        assert REVIEWS_CLUSTER in await _web_clusters(mesh)

        # revoked: gone again
        await apply_yaml(mesh.app, _no_web(), wait=True)
        _denial(await _get(mesh, "n3-denied-2"), "n3-denied-2")
        assert REVIEWS_CLUSTER not in await _web_clusters(mesh)
        assert mesh.reviews_app.requests_by_path.get("/items", 0) == 1
        assert await _web_listener_modified(mesh) == modified


async def test_an_rbac_denial_names_the_request_and_the_deciding_attribute(
    tmp_path: Path,
) -> None:
    async with two_hosts(tmp_path, manifests("enforce") + "---" + policy()) as mesh:
        ctx = callers(tmp_path, OTHER_ID)[OTHER_ID]

        async def inbound(request_id: str) -> httpx.Response:
            async with httpx.AsyncClient(timeout=10, trust_env=False, verify=ctx) as client:
                url = f"https://{mesh.inbound}/admin/x"
                return await client.get(url, headers={"x-request-id": request_id})

        async def denied() -> bool:
            try:
                return (await inbound("probe")).status_code == 403
            except httpx.TransportError:
                return False

        await wait_until(denied, timeout=60, what="reviews' sidecar enforcing the graph")
        body = _denial(await inbound("n3-rbac"), "n3-rbac")
        assert body["details"] == "rbac_access_denied_matched_policy[svc:default/reviews:/admin]"
        assert body["reason"] == "RBAC: access denied"
        # through web's sidecar (web may GET, not POST): the callee's answer comes back as is
        async with httpx.AsyncClient(timeout=10, trust_env=False) as client:
            r = await client.post(f"{mesh.outbound}/items", headers={"x-request-id": "n3-post"})
        body = _denial(r, "n3-post")
        assert body["details"] == "rbac_access_denied_matched_policy[svc:default/reviews]"
