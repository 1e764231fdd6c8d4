"""Route rules through real Envoys (caller sidecar -> reviews' sidecar): rewrites and header
changes as the backend sees them, redirects and direct responses as the client sees them,
and mirroring (the shadow gets copies, the client only the primary's answers)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from route_rules_mesh import rules_mesh

from gossamer.polling import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]

REWRITE_RULES = [
    {
        "matches": [
            {"path": {"prefix": "/api/v1"}, "queryParams": [{"name": "debug", "exact": "1"}]}
        ],
        "rewrite": {"prefix": "/internal", "host": "reviews.internal"},
        "headers": {
            "request": {
                "set": {"x-a": "b"},
                "add": {"x-c": "50%"},
                "remove": ["x-secret"],
            },
            "response": {"set": {"x-served-by": "mesh"}, "remove": ["x-backend-extra"]},
        },
        "destinations": [{"service": "reviews"}],
    },
    {
        "matches": [{"path": {"regex": "/items/[0-9]+"}}],
        "rewrite": {"regex": {"pattern": "^/items/([0-9]+)$", "substitution": "/item/\\1/view"}},
        "destinations": [{"service": "reviews"}],
    },
]


async def test_rewrite_and_header_changes_are_what_the_backend_sees(tmp_path: Path) -> None:
    async with rules_mesh(tmp_path, REWRITE_RULES) as mesh, httpx.AsyncClient(timeout=10) as c:
        sent = {"x-secret": "s3cret", "x-c": "mine", "x-a": "theirs"}
        r = await c.get(mesh.url + "/api/v1/books?debug=1", headers=sent)
        assert r.status_code == 200
        seen = json.loads(r.text)
        assert seen["path"] == "/internal/books"
        assert seen["query"] == "debug=1"
        headers = seen["headers"]
        assert headers["host"] == "reviews.internal"
        assert headers["x-a"] == "b"  # set replaces
        assert headers["x-c"] == "mine,50%"  # add keeps the client's value; % is literal
        assert "x-secret" not in headers
        assert r.headers["x-served-by"] == "mesh"

        # The query parameter is part of the match: without it, the catch-all, untouched.
        r = await c.get(mesh.url + "/api/v1/books?debug=0", headers=sent)
        seen = json.loads(r.text)
        assert seen["path"] == "/api/v1/books"
        assert seen["headers"]["x-secret"] == "s3cret"
        assert "x-served-by" not in r.headers

        # A regex match rewrites with the regex, keeping the query string.
        r = await c.get(mesh.url + "/items/42?x=1")
        seen = json.loads(r.text)
        assert (seen["path"], seen["query"]) == ("/item/42/view", "x=1")


ANSWER_RULES = [
    {"matches": [{"path": {"exact": "/hello"}}], "directResponse": {"status": 200, "body": "hi"}},
    {
        "matches": [{"path": {"prefix": "/gone"}}],
        "directResponse": {"status": 410},
        "headers": {"response": {"set": {"x-why": "retired"}}},
    },
    {"matches": [{"path": {"prefix": "/old"}}], "redirect": {"prefix": "/new", "status": 301}},
    {
        "matches": [{"path": {"exact": "/moved"}}],
        "redirect": {
            "path": "/there",
            "scheme": "https",
            "host": "shop.example",
            "port": 8443,
            "status": 307,
        },
    },
]


async def test_redirects_and_direct_responses_never_reach_the_backend(tmp_path: Path) -> None:
    async with rules_mesh(tmp_path, ANSWER_RULES) as mesh, httpx.AsyncClient(timeout=10) as c:
        before = mesh.reviews.requests
        r = await c.get(mesh.url + "/hello")
        assert (r.status_code, r.text) == (200, "hi")
        assert "x-backend" not in r.headers
        r = await c.get(mesh.url + "/gone/forever")
        assert (r.status_code, r.headers["x-why"]) == (410, "retired")

        r = await c.get(mesh.url + "/old/page?q=1")
        assert r.status_code == 301
        location = httpx.URL(r.headers["location"])
        assert (location.path, location.query) == ("/new/page", b"q=1")
        r = await c.get(mesh.url + "/moved?q=2")
        assert r.status_code == 307
        assert r.headers["location"] == "https://shop.example:8443/there?q=2"
        assert mesh.reviews.requests == before, "a redirect or direct response was forwarded"

        # Everything else still reaches reviews.
        r = await c.get(mesh.url + "/other")
        assert r.headers["x-backend"] == "reviews"


MIRROR_RULES = [
    {
        "matches": [{"path": {"prefix": "/shadowed"}}],
        "destinations": [{"service": "reviews"}],
        "mirror": {"service": "shadow", "percent": 100},
    }
]


async def test_mirror_copies_requests_while_the_client_sees_the_primary(tmp_path: Path) -> None:
    async with rules_mesh(tmp_path, MIRROR_RULES) as mesh, httpx.AsyncClient(timeout=10) as c:
        n = 30
        for i in range(n):
            r = await c.post(mesh.url + f"/shadowed/{i}", content=b"x" * 100)
            assert r.status_code == 200
            assert r.headers["x-backend"] == "reviews"  # never the shadow's answer
        await wait_until(
            lambda: mesh.shadow.requests >= n, timeout=20, what=f"{n} copies at the shadow"
        )
        copies = [s for s in mesh.shadow.seen]
        assert sorted(s.path for s in copies) == sorted(f"/shadowed/{i}" for i in range(n))
        assert all(s.method == "POST" for s in copies)
        # Envoy marks copies: "-shadow" appended to the Host's name (before any port).
        assert all(s.headers["host"].split(":")[0].endswith("-shadow") for s in copies)
        # Requests outside the rule are not mirrored.
        await c.get(mesh.url + "/plain")
        assert mesh.reviews.requests_by_path["/plain"] == 1
        assert mesh.shadow.requests == n
