"""Explaining a request on the graph (``authz.why``): the deciding attribute, then the
prohibition or the missing grant, in one line and as the engine's explanation."""

from __future__ import annotations

from pathlib import Path

from gossamer.authz.engine import build_state
from gossamer.authz.graph import Graph
from gossamer.authz.pap import JournalEntry, bootstrap_commands
from gossamer.authz.why import explain_request
from gossamer.cli.yaml_files import load_policies

WEB = "spiffe://shop.local/ns/default/sa/web"
POLICY = f"""
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {{name: shop}}
spec:
  policyClasses: [shop]
  userAttributes: {{frontends: [shop]}}
  objectAttributes:
    "svc:default/reviews": [shop]
    "svc:default/reviews:/admin": ["svc:default/reviews"]
  users: {{"{WEB}": [frontends]}}
  associations:
  - {{userAttribute: frontends, target: "svc:default/reviews", rights: [GET]}}
  prohibitions:
  - {{name: no-admin, subject: frontends, rights: [GET], include: ["svc:default/reviews:/admin"]}}
"""


def _graph(tmp_path: Path) -> Graph:
    (tmp_path / "p.yaml").write_text(POLICY)
    boot = JournalEntry(None, "bootstrap", tuple(bootstrap_commands()))
    return build_state(load_policies([tmp_path / "p.yaml"]), [boot]).decider.graph


def test_a_prohibited_prefix_names_the_prohibition(tmp_path: Path) -> None:
    why = explain_request(_graph(tmp_path), WEB, "default/reviews", "GET", "/admin/x?y=1")
    assert why["target"] == "svc:default/reviews:/admin" and why["allowed"] is False
    assert why["rule"] == "GET on svc:default/reviews:/admin prohibited by no-admin"
    assert why["explanation"]["prohibitions"] == {"no-admin": ["GET"]}


def test_a_missing_grant_names_the_policy_class(tmp_path: Path) -> None:
    why = explain_request(_graph(tmp_path), WEB, "default/reviews", "POST", "/items")
    assert why["target"] == "svc:default/reviews"
    assert why["rule"] == "no association grants POST on svc:default/reviews in policy class shop"


def test_an_allowed_request_says_so(tmp_path: Path) -> None:
    why = explain_request(_graph(tmp_path), WEB, "default/reviews", "GET", "/items")
    assert why["allowed"] is True and why["rule"].startswith("GET granted")


def test_nothing_to_explain_is_said_plainly(tmp_path: Path) -> None:
    g = _graph(tmp_path)
    assert "no verified caller" in explain_request(g, "", "default/reviews", "GET", "/")["rule"]
    other = "spiffe://shop.local/ns/default/sa/other"
    assert explain_request(g, other, "default/reviews", "GET", "/")["rule"] == (
        f"{other} is no user in the graph: nothing is granted to it"
    )
    assert "has no attribute" in explain_request(g, WEB, "default/cart", "GET", "/")["rule"]
    assert explain_request(g, WEB, "default/reviews", "GET", "/")["explanation"] is not None
