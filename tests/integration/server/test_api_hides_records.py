"""The control plane's own records (operator and join tokens, agents, the NGAC journal: the
internal kinds, all in namespace ``gossamer-system``) are in no listing and no get, for any
token, admin included: they carry SHA-256 digests of secrets that no reader needs (they
have their own endpoints: ``/v1/operator-tokens``, ``/v1/tokens``, ``/v1/agents``,
``/v1/authz``)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest

from gossamer.model.catalog import INTERNAL_KINDS
from gossamer.testing import running_control_plane
from gossamer.testing.controlplane import admin_token, api_client
from gossamer.types import API_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

SYSTEM = "gossamer-system"
HEX64 = re.compile(r"[0-9a-f]{64}")


def secret_digest(token: str) -> str:
    """What the store keeps of ``token`` (``gsm1.<fingerprint>.<secret>``, or a bare one)."""
    return hashlib.sha256(token.rsplit(".", 1)[-1].encode()).hexdigest()


def shown(r: httpx.Response) -> list[tuple[str, str]]:
    assert r.status_code == 200, r.text
    return [(i["kind"], i["metadata"].get("namespace", "default")) for i in r.json()["items"]]


async def test_no_listing_or_get_shows_a_record_or_a_digest(tmp_path: Path) -> None:
    async with running_control_plane(tmp_path / "cp") as app, api_client(app) as c:
        service = {
            "apiVersion": API_VERSION,
            "kind": "Service",
            "metadata": {"name": "shop", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 8080}]},
        }
        assert (await c.post("/v1/apply", json={"manifests": [service]})).is_success
        made = await c.post("/v1/operator-tokens", json={"name": "auditor", "readOnly": True})
        assert made.status_code == 200, made.text
        reader = made.json()["token"]
        # a namespaced token runs an NGAC batch: AccessCommands in the journal
        team = await c.post("/v1/operator-tokens", json={"name": "ta", "namespaces": ["team-a"]})
        assert team.status_code == 200, team.text
        join = await c.post("/v1/tokens", json={"ttlSeconds": 600, "scope": {"anyService": True}})
        assert join.status_code == 200, join.text
        joined = await c.post("/v1/agents/join", json={"token": join.json()["token"], "host": "h1"})
        assert joined.status_code == 200, joined.text
        unused = await c.post("/v1/tokens", json={"ttlSeconds": 600, "scope": {"anyService": True}})
        assert unused.status_code == 200, unused.text
        secrets = [
            admin_token(app.settings.data_dir),
            reader,
            team.json()["token"],
            join.json()["token"],
            unused.json()["token"],
            joined.json()["credential"],
        ]
        digests = {secret_digest(s) for s in secrets}

        for who in ({}, {"Authorization": f"Bearer {reader}"}):
            everything = await c.get("/v1/resources", headers=who)
            assert ("Service", "default") in shown(everything)
            for kind, namespace in shown(everything):
                assert kind not in INTERNAL_KINDS and namespace != SYSTEM, (kind, namespace)
            assert not digests & set(HEX64.findall(everything.text)), everything.text
            system = await c.get("/v1/resources", params={"namespace": SYSTEM}, headers=who)
            assert shown(system) == [], system.text
            for kind in ("OperatorToken", "operatortokens", "JoinToken", "Agent", "AccessCommand"):
                listed = await c.get(f"/v1/resources/{kind}", headers=who)
                assert listed.status_code == 400, listed.text
                got = await c.get(f"/v1/resources/{kind}/{SYSTEM}/admin", headers=who)
                assert got.status_code == 400, got.text
                for r in (listed, got):  # the valid kinds offered are the public ones
                    offered = r.json()["errors"][0].split("valid kinds are")[1]
                    assert not any(k in offered for k in INTERNAL_KINDS), r.text
            hidden = await c.get(f"/v1/resources/Service/{SYSTEM}/x", headers=who)
            assert hidden.status_code == 404, hidden.text
