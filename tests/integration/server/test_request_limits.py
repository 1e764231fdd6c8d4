"""The real control plane (SQLite store, uvicorn) with its size limits and a resource that
holds a lone surrogate, stored before such text was refused (issue 7 R2, R3)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gossamer.server.app import create_app
from gossamer.server.settings import Settings
from gossamer.testing.controlplane import api_client
from gossamer.types import API_VERSION

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

JSON = {"content-type": "application/json"}


def settings(data_dir: Path) -> Settings:
    return Settings(
        data_dir,
        api_addr=("127.0.0.1", 0),
        xds_addr=("127.0.0.1", 0),
        max_request_bytes=100_000,
        max_resource_bytes=10_000,
    )


def service(name: str, note: str = "") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if note:
        metadata["annotations"] = {"note": note}
    return {
        "apiVersion": API_VERSION,
        "kind": "Service",
        "metadata": metadata,
        "spec": {"ports": [{"name": "http", "port": 8080}]},
    }


async def test_limits_and_a_stored_surrogate_through_the_real_server(tmp_path: Path) -> None:
    async with create_app(settings(tmp_path)) as app:
        async with api_client(app, timeout=30) as api:
            huge = await api.post("/v1/apply", json={"manifests": [service("a", "x" * 200_000)]})
            assert huge.status_code == 413, huge.text
            assert "larger than 100000 bytes" in huge.json()["errors"][0]
            big = await api.post("/v1/apply", json={"manifests": [service("a", "x" * 20_000)]})
            assert big.status_code == 422, big.text
            assert "over the limit of 10000 bytes" in big.json()["errors"][0]
            bad = json.dumps({"manifests": [service("bad", "\ud800")]})
            refused = await api.post("/v1/apply", content=bad, headers=JSON)
            assert refused.status_code == 422, refused.text
            assert refused.json()["errors"][0].startswith(
                "manifests[0].metadata.annotations.note: contains U+D800"
            )
            assert (await api.get("/v1/resources/services")).json()["items"] == []
        # as an older control plane would have stored it
        await app.store.apply([service("cart", "bad \ud800"), service("web")])
    async with (
        create_app(settings(tmp_path)) as app,
        api_client(app, timeout=30) as api,
    ):
        everything = await api.get("/v1/resources")
        assert everything.status_code == 200, everything.text
        assert "bad \ufffd" in everything.text
        listed = await api.get("/v1/resources/services")
        assert listed.status_code == 200, listed.text
        notes = [i["metadata"].get("annotations", {}) for i in listed.json()["items"]]
        assert notes == [{"note": "bad \ufffd"}, {}]
        ok = await api.post("/v1/apply", json={"manifests": [service("cart", "fixed")]})
        assert ok.status_code == 200, ok.text
