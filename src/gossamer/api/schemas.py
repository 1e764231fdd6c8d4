"""Request and response bodies of the REST API (camelCase JSON, like the manifests)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from gossamer.controlplane.service import ApplyResult
from gossamer.types import DEFAULT_NAMESPACE
from gossamer.xds.status import Nack, ProxyStatus, TypeStatus

#: upper bound on resources in one request (each is validated and stored in one transaction)
MAX_MANIFESTS = 10_000


class Body(BaseModel):
    """Every request and response body. Strict: a request with ``"dryRun": "yes"`` or
    ``"ttlSeconds": "600"`` is refused naming the field, never coerced (an int is still a
    valid float)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        serialize_by_alias=True,
        strict=True,
    )


class ManifestsRequest(Body):
    manifests: list[dict[str, Any]] = Field(max_length=MAX_MANIFESTS)
    #: where each manifest came from (e.g. its file name), used to name it in errors
    sources: list[str] | None = None


class ApplyRequest(ManifestsRequest):
    dry_run: bool = False
    #: return only once every proxy whose config changed has ACKed it
    wait: bool = False
    wait_timeout: float = Field(default=30.0, gt=0, le=600)


class ValidateResponse(Body):
    valid: bool
    errors: list[str]


class DiffBody(Body):
    """Each entry reads ``Kind namespace/name``."""

    created: list[str] = Field(default_factory=list)
    updated: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)


class ApplyResponse(Body):
    revision: int
    diff: DiffBody
    acked_by: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, result: ApplyResult) -> ApplyResponse:
        d = result.diff
        return cls(
            revision=result.revision,
            diff=DiffBody(
                created=[str(k) for k in d.created],
                updated=[str(k) for k in d.updated],
                unchanged=[str(k) for k in d.unchanged],
                deleted=[str(k) for k in d.deleted],
            ),
            acked_by=list(result.acked_by),
        )


class ResourceRef(Body):
    kind: str
    namespace: str = DEFAULT_NAMESPACE
    name: str


class DeleteRequest(Body):
    resources: list[ResourceRef] = Field(min_length=1, max_length=MAX_MANIFESTS)
    wait: bool = False


class ResourceList(Body):
    #: the canonical kind listed (null when every kind is listed)
    kind: str | None
    items: list[dict[str, Any]]


class NackBody(Body):
    version: str
    message: str
    at: float

    @classmethod
    def of(cls, nack: Nack) -> NackBody:
        return cls(version=nack.version, message=nack.message, at=nack.at)


class TypeStatusBody(Body):
    type: str
    sent_version: str
    acked_version: str
    resources: int
    synced: bool
    last_nack: NackBody | None = None

    @classmethod
    def of(cls, t: TypeStatus) -> TypeStatusBody:
        return cls(
            type=t.type,
            sent_version=t.sent_version,
            acked_version=t.acked_version,
            resources=t.resources,
            synced=t.synced,
            last_nack=NackBody.of(t.last_nack) if t.last_nack else None,
        )


class ProxyStatusBody(Body):
    node_id: str
    kind: str
    namespace: str
    name: str
    host: str | None
    connected: bool
    protocol: str
    last_seen: float
    synced: bool
    #: synced | stale | rejected | disconnected
    state: str
    admin_address: str | None = None
    types: list[TypeStatusBody] = Field(default_factory=list)
    #: the Envoy release the proxy announced (``Node.user_agent_build_version``)
    envoy_version: str | None = None

    @classmethod
    def of(cls, p: ProxyStatus) -> ProxyStatusBody:
        return cls(
            node_id=p.node_id,
            kind=p.kind,
            namespace=p.namespace,
            name=p.name,
            host=p.host,
            connected=p.connected,
            protocol=p.protocol,
            last_seen=p.last_seen,
            synced=p.synced,
            state=p.state,
            admin_address=p.admin_address,
            types=[TypeStatusBody.of(t) for t in p.types],
            envoy_version=p.envoy_version,
        )


class ProxyList(Body):
    items: list[ProxyStatusBody]


class ErrorBody(Body):
    """Every error response: one line per problem."""

    errors: list[str]
    #: validation | unknown_kind | not_found | conflict | wait_timeout | store | ...
    code: str
    #: true when the change was stored although the request failed (wait timeouts)
    stored: bool = False


class StatusBody(Body):
    status: str
