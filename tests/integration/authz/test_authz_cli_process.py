"""``gossamer authz`` as a real process, from policy files: exit codes and JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GOSSAMER = Path(sys.executable).with_name("gossamer")

POLICY = """\
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {name: shop}
spec:
  policyClasses: [rbac, zones]
  userAttributes: {staff: [rbac], eu: [zones]}
  objectAttributes: {cart-api: [rbac], eu-services: [zones]}
  users: {"spiffe://mesh/ns/default/sa/web": [staff, eu]}
  objects: {"cart:/items": [cart-api, eu-services]}
  associations:
  - {userAttribute: staff, target: cart-api, rights: [GET, POST]}
  - {userAttribute: eu, target: eu-services, rights: [GET]}
"""
WEB = "spiffe://mesh/ns/default/sa/web"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GOSSAMER), "authz", *args], capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.integration
@pytest.mark.slow
def test_check_explain_access_from_files(tmp_path: Path) -> None:
    assert GOSSAMER.exists(), "the gossamer console script is missing: run scripts/install"
    policy = tmp_path / "shop.yaml"
    policy.write_text(POLICY)
    allow = run("check", "-f", str(policy), WEB, "cart:/items", "GET", "-o", "json")
    assert allow.returncode == 0, allow.stderr
    assert json.loads(allow.stdout)["decision"] == "allow"
    # POST is granted in rbac but not in zones: every policy class must agree
    deny = run("check", "-f", str(policy), WEB, "cart:/items", "POST", "-o", "json")
    assert deny.returncode == 1
    assert json.loads(deny.stdout) | {"rights": None} == {
        "decision": "deny",
        "user": WEB,
        "target": "cart:/items",
        "right": "POST",
        "process": None,
        "rights": None,
        "prohibitions": [],
    }
    explain = run("explain", "-f", str(policy), WEB, "cart:/items")
    assert "policy class zones: GET" in explain.stdout
    access = run("access", "-f", str(policy), WEB, "-o", "json")
    assert json.loads(access.stdout)["access"]["cart:/items"] == ["GET"]
    bad = run("check", "-f", str(tmp_path / "missing.yaml"), WEB, "cart:/items", "GET")
    assert bad.returncode == 2 and "missing.yaml" in bad.stderr
