"""How a proxy says who it is: the xDS node an Envoy announces, written and read back.

The agent and gateway write it into a bootstrap (``fill_node``); the xDS server reads it from
the first request of a stream (``parse_node``). Both sides import this core module, so the
xDS server needs nothing of translation to know who connects (docs/conventions.md).

Node id: ``sidecar~<namespace>~<name>`` or ``gateway~<namespace>~<name>``
(``ProxyIdentity.node_id``); node metadata carries the identity keys below, and
``SDS_KEY`` when the proxy's Envoy gets secrets from its host over SDS (a capability, never
an identity: a proxy that claims it wrongly only gets TLS config it cannot serve).
"""

from __future__ import annotations

from collections.abc import Mapping

from envoy.config.core.v3 import base_pb2
from google.protobuf import struct_pb2

from gossamer.errors import XdsError
from gossamer.types import ProxyIdentity, ProxyKind

KIND_KEY = "gossamer.kind"
#: Node metadata keys that carry the identity; callers may not override them.
IDENTITY_KEYS = (KIND_KEY, "namespace", "name", "service", "host", "zone")
#: Node metadata key of the proxy's admin address (``IP:PORT`` on loopback), if it has one.
ADMIN_KEY = "admin"
#: Node metadata key (``true``) of a proxy whose bootstrap has the ``gossamer-sds`` cluster:
#: its Envoy can get certificates from its agent, so it may be given mTLS.
SDS_KEY = "gossamer.sds"
_KINDS: tuple[ProxyKind, ...] = ("sidecar", "gateway")

MetadataValue = str | int | float | bool


def fill_node(
    out: base_pb2.Node, node: ProxyIdentity, extra: Mapping[str, MetadataValue] | None = None
) -> None:
    """Write ``node`` (id, cluster, identity metadata, locality) and ``extra`` metadata into
    ``out``. ``extra`` must not use ``IDENTITY_KEYS`` (``ads_bootstrap`` checks it)."""
    out.id = node.node_id
    out.cluster = node.service or node.name
    identity: dict[str, str | None] = {
        KIND_KEY: node.kind,
        "namespace": node.namespace,
        "name": node.name,
        "service": node.service,
        "host": node.host,
        "zone": node.zone,
    }
    fields: dict[str, MetadataValue] = {k: v for k, v in identity.items() if v is not None}
    fields.update(extra or {})
    metadata = struct_pb2.Struct()
    metadata.update(fields)
    out.metadata.CopyFrom(metadata)
    if node.zone is not None:
        out.locality.zone = node.zone


def shown(text: str, limit: int = 120) -> str:
    """``text`` quoted for an error message, cut after ``limit`` characters: a refusal
    travels back in gRPC's status metadata, which clients cap at 8 KiB."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def parse_node(node: base_pb2.Node) -> ProxyIdentity:
    """The identity an Envoy announced in its xDS node (inverse of ``fill_node``).

    The node id must be ``sidecar~<namespace>~<name>`` or ``gateway~<namespace>~<name>``.
    Identity metadata, when present, must agree with the id. Without Gossamer metadata
    the service of a sidecar is taken from ``node.cluster``.
    """
    parts = node.id.split("~")
    if len(parts) != 3 or parts[0] not in _KINDS or not parts[1] or not parts[2]:
        raise XdsError(
            f"node.id {shown(node.id)} is not a Gossamer proxy id; expected "
            "'sidecar~<namespace>~<name>' or 'gateway~<namespace>~<name>' "
            "(generate the bootstrap with gossamer.translate.bootstrap.ads_bootstrap)"
        )
    kind: ProxyKind = "sidecar" if parts[0] == "sidecar" else "gateway"
    namespace, name = parts[1], parts[2]

    fields = node.metadata.fields
    if KIND_KEY not in fields:
        service = (node.cluster or None) if kind == "sidecar" else None
        return ProxyIdentity(kind, namespace, name, service=service)

    values: dict[str, str | None] = {}
    for key in IDENTITY_KEYS:
        if key not in fields:
            values[key] = None
            continue
        value = fields[key]
        if value.WhichOneof("kind") != "string_value":
            raise XdsError(
                f"node.metadata[{key!r}] of node {shown(node.id)} must be a string, got "
                f"{value.WhichOneof('kind')}; regenerate the bootstrap with ads_bootstrap"
            )
        values[key] = value.string_value
    for key, expected in ((KIND_KEY, kind), ("namespace", namespace), ("name", name)):
        if values[key] is not None and values[key] != expected:
            raise XdsError(
                f"node.metadata[{key!r}] is {shown(values[key] or '')} but node.id "
                f"{shown(node.id)} says {expected!r}; the bootstrap was edited by hand, "
                "regenerate it"
            )
    return ProxyIdentity(
        kind, namespace, name, service=values["service"], host=values["host"], zone=values["zone"]
    )


def admin_address(node: base_pb2.Node) -> str | None:
    """The admin address a proxy published in its node metadata, if any."""
    field = node.metadata.fields.get(ADMIN_KEY)
    return field.string_value if field is not None and field.string_value else None


def envoy_version(node: base_pb2.Node) -> str | None:
    """The Envoy release a proxy runs (``major.minor.patch``), as its Envoy announces it in
    ``user_agent_build_version``; None when it says nothing (a client that is not Envoy)."""
    if not node.HasField("user_agent_build_version"):
        return None
    v = node.user_agent_build_version.version
    return f"{v.major_number}.{v.minor_number}.{v.patch}"


def sds_capable(node: base_pb2.Node) -> bool:
    """Did the proxy's bootstrap say its Envoy gets secrets over SDS (``SDS_KEY``)?"""
    field = node.metadata.fields.get(SDS_KEY)
    return field is not None and field.WhichOneof("kind") == "bool_value" and field.bool_value
