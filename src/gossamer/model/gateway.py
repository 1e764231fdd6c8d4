"""``Gateway``: an ingress listener in front of mesh services."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gossamer.model.base import IPAddress, Port, Resource, Strict


class GatewaySpec(Strict):
    address: IPAddress = "127.0.0.1"
    port: Port
    #: host names served; ``*`` matches any; ``*.example.com`` matches a suffix
    hosts: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    #: proxies in front of this gateway whose X-Forwarded-For entries are trusted
    trustedHops: int = Field(default=0, ge=0, le=10)


class Gateway(Resource):
    kind: Literal["Gateway"]
    spec: GatewaySpec
