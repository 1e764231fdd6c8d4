"""``kind: AccessPolicy``: an NGAC policy (or part of one) as a resource.

Several AccessPolicy resources merge into one graph (see :mod:`gossamer.authz.policy`):
a node named in several resources gets the union of its parents, an association named
twice the union of its rights.

```yaml
apiVersion: gossamer.dev/v1
kind: AccessPolicy
metadata: {name: shop}
spec:
  accessRights: [GET, POST]
  policyClasses: [rbac]
  userAttributes: {staff: [rbac]}
  objectAttributes: {cart-api: [rbac]}
  users: {"spiffe://mesh/ns/default/sa/web": [staff]}
  objects: {"cart:/items/*": [cart-api]}
  associations: [{userAttribute: staff, target: cart-api, rights: [GET]}]
  prohibitions: [{name: no-post, subject: staff, rights: [POST], include: [cart-api]}]
  obligations: []
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gossamer.model.access_commands import Command, Obligation, ProhibitionSpec
from gossamer.model.base import Resource, Strict


class AssociationSpec(Strict):
    userAttribute: str = Field(min_length=1)
    target: str = Field(min_length=1)
    rights: list[str] = Field(min_length=1)


class AccessPolicySpec(Strict):
    accessRights: list[str] | None = None
    policyClasses: list[str] = Field(default_factory=list)
    userAttributes: dict[str, list[str]] = Field(default_factory=dict)
    objectAttributes: dict[str, list[str]] = Field(default_factory=dict)
    users: dict[str, list[str]] = Field(default_factory=dict)
    objects: dict[str, list[str]] = Field(default_factory=dict)
    associations: list[AssociationSpec] = Field(default_factory=list)
    prohibitions: list[ProhibitionSpec] = Field(default_factory=list)
    obligations: list[Obligation] = Field(default_factory=list)


class AccessPolicy(Resource):
    kind: Literal["AccessPolicy"] = "AccessPolicy"
    spec: AccessPolicySpec = Field(default_factory=AccessPolicySpec)


class AccessCommandSpec(Strict):
    """One accepted administrative batch: who, why (``admin``, ``bootstrap``,
    ``obligation:<name>``) and the commands, in order."""

    user: str | None = None
    cause: str
    commands: list[Command] = Field(min_length=1)


class AccessCommand(Resource):
    """A journal entry of the NGAC administration point (written by the control plane, in
    namespace ``gossamer-system``, named ``c-<sequence>``); replayed in order on start."""

    kind: Literal["AccessCommand"] = "AccessCommand"
    spec: AccessCommandSpec
