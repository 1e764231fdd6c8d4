"""``gossamer authz check/explain/access`` from policy files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gossamer.cli.authz import app

POLICY = """\
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {name: shop}
spec:
  policyClasses: [rbac]
  userAttributes: {staff: [rbac]}
  objectAttributes: {cart-api: [rbac]}
  users: {"spiffe://mesh/ns/default/sa/web": [staff]}
  objects: {"cart:/items": [cart-api]}
  associations: [{userAttribute: staff, target: cart-api, rights: [GET, POST]}]
"""
EXTRA = """\
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {name: freeze}
spec:
  prohibitions:
  - {name: no-post, subject: staff, rights: [POST], include: [cart-api]}
  - {name: batch-job, subject: "spiffe://mesh/ns/default/sa/web", process: cron,
     rights: [GET], include: [cart-api]}
"""
WEB = "spiffe://mesh/ns/default/sa/web"


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    (tmp_path / "p.yaml").write_text(POLICY)
    (tmp_path / "x.yaml").write_text(EXTRA)
    return ["-f", str(tmp_path / "p.yaml"), "-f", str(tmp_path / "x.yaml")]


runner = CliRunner()


def test_check_allow_and_deny(files: list[str]) -> None:
    allow = runner.invoke(app, ["check", *files[:2], WEB, "cart:/items", "POST", "-o", "json"])
    assert allow.exit_code == 0, allow.output
    assert json.loads(allow.output)["decision"] == "allow"
    deny = runner.invoke(app, ["check", *files, WEB, "cart:/items", "POST", "-o", "json"])
    assert deny.exit_code == 1
    data = json.loads(deny.output)
    assert data["decision"] == "deny" and data["prohibitions"] == ["no-post"]
    assert data["rights"] == ["GET"]


def test_check_with_process(files: list[str]) -> None:
    res = runner.invoke(app, ["check", *files, WEB, "cart:/items", "GET", "--process", "cron"])
    assert res.exit_code == 1 and res.output.startswith("deny (prohibited by batch-job)")
    res = runner.invoke(app, ["check", *files, WEB, "cart:/items", "GET", "--process", "web"])
    assert res.exit_code == 0 and res.output.strip() == "allow"


def test_explain_and_access(files: list[str]) -> None:
    res = runner.invoke(app, ["explain", *files, WEB, "cart:/items"])
    assert res.exit_code == 0, res.output
    assert "path cart:/items -> cart-api -> rbac" in res.output
    assert "prohibition no-post denies POST" in res.output
    res = runner.invoke(app, ["access", *files, WEB, "-o", "json"])
    assert json.loads(res.output)["access"] == {"cart-api": ["GET"], "cart:/items": ["GET"]}


def test_errors_name_the_problem(files: list[str], tmp_path: Path) -> None:
    res = runner.invoke(app, ["check", *files, "nobody", "cart:/items", "GET"])
    assert res.exit_code == 2 and "'nobody' does not exist" in res.output
    (tmp_path / "bad.yaml").write_text(POLICY.replace("[staff]", "[staf]"))
    res = runner.invoke(app, ["check", "-f", str(tmp_path / "bad.yaml"), WEB, "x", "GET"])
    assert res.exit_code == 2 and "'staf'" in res.output
