"""``Service``: a named set of workloads reached by name, with its ports and protocols."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gossamer.model.authorization import AuthorizationMode, ServiceAuthorization
from gossamer.model.base import LoopbackAddress, Name, Port, Resource, Strict
from gossamer.model.tls import MtlsMode

Protocol = Literal["http", "http2", "grpc", "tcp"]
HTTP_PROTOCOLS: frozenset[str] = frozenset({"http", "http2", "grpc"})


class ServicePort(Strict):
    name: Name
    #: the port clients dial: the service's own port at its stable local address
    port: Port
    protocol: Protocol = "http"

    @property
    def is_http(self) -> bool:
        return self.protocol in HTTP_PROTOCOLS


class ServiceMtls(Strict):
    """This service's own mTLS mode, overriding the Mesh's ``mtls.mode``."""

    mode: MtlsMode


class ServiceSpec(Strict):
    ports: list[ServicePort] = Field(min_length=1)
    #: the stable local address apps dial; allocated from 127.128.0.0/9 when omitted
    localAddress: LoopbackAddress | None = None
    #: overrides ``Mesh.spec.mtls.mode`` for this service's sidecars (None: the mesh's)
    mtls: ServiceMtls | None = None
    #: overrides ``Mesh.spec.authorization.mode`` for this service's sidecars (None: the mesh's)
    authorization: ServiceAuthorization | None = None

    @field_validator("ports")
    @classmethod
    def _unique(cls, ports: list[ServicePort]) -> list[ServicePort]:
        for attr in ("name", "port"):
            seen: set[object] = set()
            for p in ports:
                value = getattr(p, attr)
                if value in seen:
                    raise ValueError(f"two ports have {attr} {value!r}: each must be unique")
                seen.add(value)
        return ports


class Service(Resource):
    kind: Literal["Service"]
    spec: ServiceSpec

    def port(self, name: str | None) -> ServicePort | None:
        """The port with this name, or the only port when ``name`` is None."""
        if name is None:
            return self.spec.ports[0] if len(self.spec.ports) == 1 else None
        return next((p for p in self.spec.ports if p.name == name), None)

    def mtls_mode(self, mesh_mode: MtlsMode) -> MtlsMode:
        """The mode this service's sidecars run: its own, or else the mesh's."""
        return self.spec.mtls.mode if self.spec.mtls is not None else mesh_mode

    def authorization_mode(self, mesh_mode: AuthorizationMode) -> AuthorizationMode:
        """The NGAC enforcement this service's sidecars run: its own, or else the mesh's."""
        auth = self.spec.authorization
        return auth.mode if auth is not None else mesh_mode
