"""The control plane's engine keeps the API's rights (HTTP methods, read, apply, delete)
whatever an AccessPolicy or a set_resource_access_rights command says."""

from __future__ import annotations

import pytest

from gossamer.authz.engine import build_state
from gossamer.authz.graph import Graph, Kind
from gossamer.authz.rights import API_RIGHTS, CONTROL_PLANE_RIGHTS, HTTP_METHODS, Rights
from gossamer.errors import ValidationError
from gossamer.model.access_policy import AccessPolicy
from gossamer.types import API_VERSION


def test_setting_resource_rights_adds_to_the_kept_ones() -> None:
    rights = Rights(["publish"], kept=CONTROL_PLANE_RIGHTS)
    assert rights.resource_rights == (*CONTROL_PLANE_RIGHTS, "publish")
    rights.set_resource_rights(["consume"])
    assert rights.resource_rights == (*CONTROL_PLANE_RIGHTS, "consume")
    assert not rights.is_known("publish")
    assert all(rights.is_known(r) for r in (*HTTP_METHODS, *API_RIGHTS))
    # *r is every resource right, kept ones included
    assert set(rights.names(rights.resolve(rights.mask(["*r"])))) >= {"GET", "apply", "consume"}


def test_without_kept_rights_a_graph_is_what_it_is_told() -> None:
    rights = Rights(["publish"])
    assert rights.resource_rights == ("publish",)
    assert not rights.is_known("GET")


def test_a_graph_never_drops_a_kept_right_in_use() -> None:
    g = Graph(["publish"], kept_rights=CONTROL_PLANE_RIGHTS)
    g.create_node("pc", Kind.PC)
    g.create_node("ua", Kind.UA, ["pc"])
    g.create_node("oa", Kind.OA, ["pc"])
    g.associate("ua", "oa", ["GET", "read", "publish"])
    with pytest.raises(ValidationError, match="publish"):
        g.set_resource_rights(["consume"])  # publish is granted: refused, as before
    g.associate("ua", "oa", ["GET", "read"])
    g.set_resource_rights(["consume"])  # GET and read are kept: accepted
    assert g.rights.is_known("GET") and g.rights.is_known("read")


def test_the_engine_keeps_the_api_rights_beside_a_policy_without_them() -> None:
    policy = AccessPolicy.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "AccessPolicy",
            "metadata": {"name": "queues"},
            "spec": {
                "accessRights": ["publish"],
                "policyClasses": ["queues"],
                "objectAttributes": {"orders": ["queues"]},
            },
        }
    )
    state = build_state([policy], [])
    assert set(CONTROL_PLANE_RIGHTS) | {"publish"} == set(state.graph.rights.resource_rights)
