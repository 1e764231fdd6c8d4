import json

import httpx
import pytest

from gossamer.agent.client import RegistryClient
from gossamer.agent.replies import JoinAnswer, env_variables
from gossamer.errors import RefusedError, RejectedError, ServerError, UnreachableError


def _client(handler: httpx.MockTransport) -> RegistryClient:
    return RegistryClient("http://cp.test", "a-1", "cred", transport=handler)


@pytest.mark.asyncio
async def test_calls_follow_the_protocol() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    async with _client(httpx.MockTransport(handle)) as api:
        await api.put_workloads([{"kind": "Workload"}])
        await api.report_health({"default/web-1": "draining"}, wait=True, timeout=20)
    put, post = seen
    assert (put.method, put.url.path) == ("PUT", "/v1/agents/a-1/workloads")
    assert json.loads(put.content) == {"workloads": [{"kind": "Workload"}]}
    assert put.headers["authorization"] == "Bearer cred"
    assert (post.method, post.url.path) == ("POST", "/v1/agents/a-1/health")
    assert dict(post.url.params) == {"wait": "true", "timeout": "20"}
    assert json.loads(post.content) == {"workloads": {"default/web-1": "draining"}}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "error"),
    [(401, RefusedError), (409, RejectedError), (422, RejectedError), (503, ServerError)],
)
async def test_errors_by_status(status: int, error: type[Exception]) -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(status, json={"errors": ["the token expired"], "code": "x"})
    )
    async with _client(transport) as api:
        with pytest.raises(error, match="the token expired"):
            await api.join("tok", "vm-3")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("reason", "revoked"), [("revoked", True), ("unknown_agent", False), (None, False)]
)
async def test_a_refusal_carries_its_reason(reason: str | None, revoked: bool) -> None:
    """Only ``revoked`` makes the agent stop (issue 7, R1); a 401 without a reason does not."""
    body = {"errors": ["no"], "code": "unauthorized", **({"reason": reason} if reason else {})}
    transport = httpx.MockTransport(lambda r: httpx.Response(401, json=body))
    async with _client(transport) as api:
        with pytest.raises(RefusedError) as refused:
            await api.report_health({})
    assert (refused.value.reason, refused.value.revoked) == (reason, revoked)


@pytest.mark.asyncio
async def test_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with _client(httpx.MockTransport(refuse)) as api:
        with pytest.raises(
            UnreachableError, match=r"cannot reach the control plane at http://cp\.test"
        ):
            await api.report_health({})


@pytest.mark.asyncio
async def test_join_answer() -> None:
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json={"agentId": "a-9", "credential": "c"})
    )
    async with RegistryClient("http://cp.test", transport=transport) as api:
        assert await api.join("tok", "vm-3") == JoinAnswer("a-9", "c")


@pytest.mark.asyncio
async def test_join_answer_with_trust_bundle_and_xds_addresses() -> None:
    body = {
        "agentId": "a-9",
        "credential": "c",
        "trustBundle": "PEM",
        "xdsTlsAddress": "10.0.0.5:18001",
        "xdsAddress": "10.0.0.5:18000",
    }
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json=body))
    async with RegistryClient("http://cp.test", transport=transport) as api:
        answer = await api.join("tok", "vm-3")
    assert answer == JoinAnswer("a-9", "c", b"PEM", "10.0.0.5:18000", "10.0.0.5:18001")


def test_env_shapes() -> None:
    assert env_variables({"env": {"A_ADDR": "1"}}) == {"A_ADDR": "1"}
    body = {
        "workloads": [
            {"name": "w", "dependencies": [{"env": {"CATALOG_ADDR": "127.1.2.3:80"}}]},
            {"name": "v", "env": {"REVIEWS_PORT": 9080}},
        ]
    }
    assert env_variables(body) == {"CATALOG_ADDR": "127.1.2.3:80", "REVIEWS_PORT": "9080"}
