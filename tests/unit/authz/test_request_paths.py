"""The path a request is decided on is the one Envoy's inbound HCM routes and decides
(``translate/hcm.py``: ``normalize_path``, ``merge_slashes``, ``%2F``/``%5C`` unescaped and
redirected): ``mesh_names.path_of``, and so ``requests.decide`` on a raw path, give what
Envoy 1.40 turned each raw path into (measured: a direct response echoing ``%REQ(:PATH)%``,
or the redirect's ``Location``; 22,000 random paths agreed before this table was written).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gossamer.authz.engine import build_state
from gossamer.authz.mesh_names import path_of
from gossamer.authz.requests import decide, deciding_target
from gossamer.cli.authz import app
from gossamer.model import parse_yaml
from gossamer.model.access_policy import AccessPolicy

#: raw path -> what Envoy decided it as (query string dropped)
ENVOY = {
    "//x": "/x",
    "/a/../b": "/b",
    "/a/./b": "/a/b",
    "/%2Fadmin": "/admin",
    "/x%2F..%2Fadmin": "/admin",
    "/%61dmin": "/admin",
    "/%2e%2e/admin": "/admin",
    "/admin?q=1": "/admin",
    "/a//b/": "/a/b/",
    "/a/b/..": "/a/",
    "/a/b/../": "/a/",
    "/..": "/",
    "/../a": "/a",
    "/a\\b": "/a/b",
    "/a%5Cb": "/a/b",
    "/a%2fb": "/a/b",
    "/%7e%41": "/~A",
    "/%3a%3A": "/%3a%3A",
    "/a(b)!$&*+,;=:@~": "/a(b)!$&*+,;=:@~",
    "/a%2e/b": "/a./b",
    "/a/%2E%2E/b": "/b",
    "/a?x=/../b": "/a",
    "/a/..?x": "/",
    "/a%2561": "/a%2561",
    "/a/b%2F": "/a/b/",
    "/a/.": "/a/",
    '/a"b': "/a%22b",
    "/a{b}": "/a%7Bb%7D",
    "/a%zz": "/a%zz",
    "/a%2F%2Fb": "/a/b",
    "/a/b%2F..%2F..": "/",
    "/a//..": "/a/",
    "/a/b//../c": "/a/b/c",
    "/%5C": "//",
    "///": "//",
    "/%%61a": "/%25aa",
    "/a/...": "/a/...",
    "/.a": "/.a",
}


runner = CliRunner()


@pytest.mark.parametrize(("raw", "envoy"), ENVOY.items())
def test_the_path_decided_is_envoys(raw: str, envoy: str) -> None:
    assert path_of(raw) == envoy
    assert path_of(envoy) == envoy  # Envoy's own paths (ext_authz's) come back unchanged


POLICY = """
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {name: shop}
spec:
  policyClasses: [shop]
  userAttributes: {frontends: [shop]}
  objectAttributes:
    "svc:default/reviews": [shop]
    "svc:default/reviews:/admin": ["svc:default/reviews"]
    "svc:default/reviews:/a/b": ["svc:default/reviews"]
  users: {"spiffe://td/ns/default/sa/web": [frontends]}
  associations: [{userAttribute: frontends, target: "svc:default/reviews", rights: [GET]}]
  prohibitions:
  - {name: no-admin, subject: frontends, rights: [GET], include: ["svc:default/reviews:/admin"]}
"""


@pytest.mark.parametrize(
    "raw",
    ["//admin", "/x/../admin", "/./admin", "/%2Fadmin", "/x%2F..%2Fadmin", "/%61dmin",
     "/%2e%2e/admin", "/admin%2Fusers", "/admin\\users", "//admin//users?x=/"],
)  # fmt: skip
def test_raw_variants_of_a_denied_prefix_are_decided_on_it(raw: str) -> None:
    state = build_state(
        [r for r in parse_yaml(POLICY, "p.yaml") if isinstance(r, AccessPolicy)], []
    )
    web, reviews = "spiffe://td/ns/default/sa/web", ("default", "reviews")
    assert deciding_target(state.graph, reviews, raw) == "svc:default/reviews:/admin"
    assert decide(state.graph, state.decider, web, reviews, "GET", raw) is False
    assert decide(state.graph, state.decider, web, reviews, "GET", "/adminx") is True
    assert deciding_target(state.graph, reviews, "/a//b/c") == "svc:default/reviews:/a/b"


def test_authz_check_decides_a_raw_path_as_envoy(tmp_path: Path) -> None:
    """``gossamer authz check --path``: the request's deciding attribute, on the path Envoy
    normalises the raw one to (docs/ngac.md: identical to the RBAC and ext_authz)."""
    (tmp_path / "p.yaml").write_text(POLICY)
    args = ["check", "-f", str(tmp_path / "p.yaml"), "spiffe://td/ns/default/sa/web"]
    for raw in ("//admin", "/x/../admin", "/%61dmin/users", "/admin%2Fx?y=1"):
        denied = runner.invoke(
            app, [*args, "svc:default/reviews", "GET", "--path", raw, "-o", "json"]
        )
        assert denied.exit_code == 1, denied.output
        data = json.loads(denied.output)
        assert data["target"] == "svc:default/reviews:/admin", data
        assert data["path"] == path_of(raw) and data["prohibitions"] == ["no-admin"]
    allowed = runner.invoke(
        app, [*args, "svc:default/reviews", "GET", "--path", "/adminx/../a%2Fb/c"]
    )
    assert allowed.exit_code == 0, allowed.output
    assert "svc:default/reviews:/a/b" in allowed.output
    # --path names a request to a service: the target must be the service's attribute
    wrong = runner.invoke(app, [*args, "svc:default/reviews:/admin", "GET", "--path", "/x"])
    assert wrong.exit_code == 2
    assert "TARGET" in wrong.output and "svc:<ns>/<svc>" in wrong.output
