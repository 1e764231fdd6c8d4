"""A verified token's end user read straight from the payload ``Struct`` Envoy's
``jwt_authn`` puts in a check's metadata: only ``iss``, ``sub`` and the claims the issuer's
``claimsToAttributes`` maps are looked at (converting the whole payload to a dict cost more
than the decision).

The values are read as the token's JSON has them: a string, each string of a list,
``true``/``false``, and a whole number as JSON writes it (the ``Struct`` holds every number
as a double: ``3`` arrives as ``3.0`` and maps as ``"3"``, as ``authz check`` maps a
token's ``3``); anything else maps nothing (``end_users.claim_attributes``).
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import struct_pb2

from gossamer.authz.end_users import EndUser
from gossamer.model.authentication import end_user


def _string(fields: Mapping[str, struct_pb2.Value], key: str) -> str | None:
    if key not in fields:
        return None
    value = fields[key]
    return value.string_value if value.WhichOneof("kind") == "string_value" else None


def _key(value: struct_pb2.Value) -> str | None:
    """A claim value as ``claimsToAttributes`` keys it, or None if it maps nothing."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "number_value" and value.number_value.is_integer():
        return str(int(value.number_value))
    return None


def token_user(
    payload: struct_pb2.Struct, issuers: Mapping[str, Mapping[str, Mapping[str, str]]]
) -> EndUser | None:
    """The end user of a verified token's ``payload`` (None without string ``iss`` and
    ``sub``), placed under the attributes its issuer's mapped claims name."""
    fields = payload.fields
    issuer, subject = _string(fields, "iss"), _string(fields, "sub")
    if issuer is None or subject is None:
        return None
    out: set[str] = set()
    for claim, values in issuers.get(issuer, {}).items():
        if claim not in fields:
            continue
        got = fields[claim]
        items = got.list_value.values if got.WhichOneof("kind") == "list_value" else (got,)
        for item in items:
            key = _key(item)
            attribute = values.get(key) if key is not None else None
            if attribute is not None:
                out.add(attribute)
    return EndUser(end_user(issuer, subject), tuple(sorted(out)))
