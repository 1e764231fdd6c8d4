"""The host's side of ``stats`` requests: plain prefixes of the mesh's own characters
only (anything else is answered with an error line and no admin call), turned into the
admin API's filter by the host, and only names under them sent back."""

from __future__ import annotations

from typing import Any

import pytest

from gossamer.agent.client import RegistryClient
from gossamer.agent.dumps import HostRequests
from gossamer.testing import HttpBackend, free_port

pytestmark = pytest.mark.asyncio

WEB = "sidecar~default~web-1"


def stats(prefixes: object) -> dict[str, Any]:
    return {"id": "r1", "kind": "stats", "nodeId": WEB, "prefixes": prefixes}


async def test_bad_prefixes_never_reach_the_admin_api() -> None:
    api = RegistryClient(f"http://127.0.0.1:{free_port()}", "a1", "secret")
    async with HttpBackend("tripwire") as tripwire, api:
        admin = f"{tripwire.address[0]}:{tripwire.address[1]}"
        host = HostRequests(api, lambda: {WEB: admin})
        for bad in (None, [], "cluster.", ["cluster.(.*)"], ["x/../../admin?"], ["a b"], [1]):
            answer = await host.read(stats(bad))
            assert answer["error"].startswith("a stats request needs 1..64 stat-name prefixes"), bad
        assert tripwire.requests == 0
