"""``authorization``: whether a sidecar enforces the NGAC graph on its inbound requests
(docs/ngac.md, "Enforcement in Envoy"). Shared by ``Mesh`` and ``Service``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator

from gossamer.model.base import Strict
from gossamer.model.tls import _yaml_off

#: ``enforce``: deny unless the graph grants; ``audit``: allow, count what would be denied;
#: ``off``: no check
AuthorizationMode = Annotated[Literal["enforce", "audit", "off"], BeforeValidator(_yaml_off)]


class MeshAuthorization(Strict):
    """The mode of every service that sets none. ``off`` by default: a mesh from before
    enforcement existed has no grants in its graph, and ``enforce`` would deny every call
    on upgrade; turn it on once the AccessPolicy grants what callers need (``audit`` first
    shows what ``enforce`` would deny)."""

    mode: AuthorizationMode = "off"


class ServiceAuthorization(Strict):
    """This service's own mode, overriding the Mesh's ``authorization.mode``."""

    mode: AuthorizationMode
