"""Access rights: names, wildcards and their bitset encoding.

Administrative rights and wildcards follow NIST's reference implementation
(usnistgov/policy-machine-core, ``pap/admin/AdminAccessRights.java`` at commit
3a6a8697b4fe33f0a1893e99f8604c79bedfce72). Resource rights are configurable; Gossamer's
default is the HTTP methods, because objects are service operations.

The control plane's engine also *keeps* some resource rights whatever a policy sets (``kept``):
the HTTP methods and the REST API's ``read``, ``apply`` and ``delete`` (``API_RIGHTS``), on
which operator tokens are decided; a policy's ``accessRights`` add to them, never remove them.

Every right gets one bit in a :class:`Rights` registry; a set of rights is a Python ``int``.
Wildcard resolution is done on bitsets exactly as the reference resolves sets: ``*`` means
every admin, query and resource right; ``*r`` means the resource rights *only* (other rights
in the same set are dropped, as in the reference); the other wildcards expand to their
groups.
"""

from __future__ import annotations

from collections.abc import Iterable

from gossamer.errors import FieldError, ValidationError

HTTP_METHODS: tuple[str, ...] = (
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
)

#: the REST API's rights on a namespace's kind of resource (docs/ngac.md, "The API under NGAC")
API_READ = "read"
API_APPLY = "apply"
API_DELETE = "delete"
API_RIGHTS: tuple[str, ...] = (API_READ, API_APPLY, API_DELETE)
#: what the control plane's engine keeps among its resource rights whatever a policy sets
CONTROL_PLANE_RIGHTS: tuple[str, ...] = (*HTTP_METHODS, *API_RIGHTS)

ADMIN_GRAPH: tuple[str, ...] = (
    "create_policy_class",
    "create_object",
    "create_object_attribute",
    "create_user_attribute",
    "create_user",
    "set_node_properties",
    "delete_policy_class",
    "delete_object",
    "delete_object_attribute",
    "delete_user_attribute",
    "delete_user",
    "delete_object_from",
    "delete_object_attribute_from",
    "delete_user_attribute_from",
    "delete_user_from",
    "assign",
    "assign_to",
    "deassign",
    "deassign_from",
    "associate",
    "associate_to",
    "dissociate",
    "dissociate_from",
)
ADMIN_PROHIBITION: tuple[str, ...] = (
    "create_prohibition",
    "create_process_prohibition",
    "create_prohibition_with_complement_container",
    "delete_process_prohibition",
    "delete_prohibition",
    "delete_prohibition_with_complement_container",
)
ADMIN_OBLIGATION: tuple[str, ...] = ("create_obligation", "delete_obligation")
ADMIN_OPERATION: tuple[str, ...] = (
    "set_resource_access_rights",
    "create_operation",
    "delete_operation",
)
ADMIN_GENERAL: tuple[str, ...] = ("reset", "serialize_policy", "deserialize_policy")
QUERY_GRAPH: tuple[str, ...] = (
    "query_policy_classes",
    "query_assignments",
    "query_subgraph",
    "query_associations",
)
QUERY_PROHIBITION: tuple[str, ...] = ("query_prohibitions", "query_process_prohibitions")
QUERY_OBLIGATION: tuple[str, ...] = ("query_obligations",)
QUERY_OPERATION: tuple[str, ...] = ("query_resource_access_rights", "query_operations")
QUERY_ACCESS = "query_access"

ADMIN_RIGHTS: tuple[str, ...] = (
    *ADMIN_GRAPH,
    *ADMIN_PROHIBITION,
    *ADMIN_OBLIGATION,
    *ADMIN_OPERATION,
    *ADMIN_GENERAL,
)
QUERY_RIGHTS: tuple[str, ...] = (
    *QUERY_GRAPH,
    *QUERY_PROHIBITION,
    *QUERY_OBLIGATION,
    *QUERY_OPERATION,
)

WC_ALL = "*"
WC_RESOURCE = "*r"
WILDCARD_GROUPS: dict[str, tuple[str, ...]] = {
    "*a": ADMIN_RIGHTS,
    "*a:graph": ADMIN_GRAPH,
    "*a:prohibition": ADMIN_PROHIBITION,
    "*a:obligation": ADMIN_OBLIGATION,
    "*a:operation": ADMIN_OPERATION,
    "*q": QUERY_RIGHTS,
    "*q:graph": QUERY_GRAPH,
    "*q:prohibition": QUERY_PROHIBITION,
    "*q:obligation": QUERY_OBLIGATION,
    "*q:operation": QUERY_OPERATION,
}
WILDCARDS: tuple[str, ...] = (WC_ALL, WC_RESOURCE, *WILDCARD_GROUPS)


class Rights:
    """The registry of right names and their bits, plus the configured resource rights
    (always including ``kept``: setting the resource rights adds to those)."""

    def __init__(
        self, resource_rights: Iterable[str] = HTTP_METHODS, kept: Iterable[str] = ()
    ) -> None:
        self._bit: dict[str, int] = {}
        self._names: list[str] = []
        for name in (*WILDCARDS, *ADMIN_RIGHTS, *QUERY_RIGHTS, QUERY_ACCESS):
            self._add(name)
        self.wildcard_mask = self.mask(WILDCARDS)
        self.all_bit = self._bit[WC_ALL]
        self.resource_wc_bit = self._bit[WC_RESOURCE]
        self.admin_query_mask = self.mask((*ADMIN_RIGHTS, *QUERY_RIGHTS))
        self._expansions = [(self._bit[w], self.mask(g)) for w, g in WILDCARD_GROUPS.items()]
        self.resource_rights: tuple[str, ...] = ()
        self.resource_mask = 0
        self.kept: tuple[str, ...] = ()
        self.set_resource_rights(kept)
        self.kept = self.resource_rights
        self.kept_mask = self.resource_mask
        self.set_resource_rights(resource_rights)

    def _add(self, name: str) -> int:
        bit = self._bit.get(name)
        if bit is None:
            bit = 1 << len(self._names)
            self._bit[name] = bit
            self._names.append(name)
        return bit

    def set_resource_rights(self, names: Iterable[str]) -> None:
        """Replace the resource rights (admin names and wildcards are refused); the kept
        rights stay, first."""
        names = tuple(dict.fromkeys((*self.kept, *names)))
        bad = [n for n in names if n in self._bit and not self._is_resource_name(n)]
        bad += [n for n in names if not n or n.startswith("*")]
        if bad:
            raise ValidationError(
                [
                    FieldError(
                        f"{bad[0]!r} cannot be a resource access right: it is empty, a "
                        "wildcard or an administrative right; use another name",
                        "accessRights",
                    )
                ]
            )
        self.resource_rights = names
        self.resource_mask = 0
        for n in names:
            self.resource_mask |= self._add(n)

    def _is_resource_name(self, name: str) -> bool:
        return (
            name not in WILDCARDS
            and name not in ADMIN_RIGHTS
            and name not in QUERY_RIGHTS
            and name != QUERY_ACCESS
        )

    def is_known(self, name: str) -> bool:
        """A right an association may grant: resource, admin, query or wildcard."""
        bit = self._bit.get(name)
        if bit is None:
            return False
        return not self._is_resource_name(name) or bool(bit & self.resource_mask)

    def bit(self, name: str) -> int:
        bit = self._bit.get(name)
        if bit is None or not self.is_known(name):
            raise ValidationError(
                [
                    FieldError(
                        f"unknown access right {name!r}; valid: {', '.join(self.resource_rights)}, "
                        "an administrative right or a wildcard (*, *r, *a, ...)",
                        "rights",
                    )
                ]
            )
        return bit

    def mask(self, names: Iterable[str]) -> int:
        out = 0
        for n in names:
            b = self._bit.get(n)
            out |= b if b is not None else self._add(n)
        return out

    def encode(self, names: Iterable[str], field: str = "rights") -> int:
        """Bits for ``names``; every name must be known (else nothing is returned)."""
        out = 0
        bad = [n for n in names if not self.is_known(n)]
        if bad:
            raise ValidationError(
                [
                    FieldError(
                        f"unknown access right {bad[0]!r}; valid: "
                        f"{', '.join(self.resource_rights)}, "
                        "an administrative right or a wildcard (*, *r, *a, ...)",
                        field,
                    )
                ]
            )
        for n in names:
            out |= self._bit[n]
        return out

    def names(self, bits: int) -> list[str]:
        """Names of the set bits, in registry order."""
        out: list[str] = []
        i = 0
        while bits:
            if bits & 1:
                out.append(self._names[i])
            bits >>= 1
            i += 1
        return out

    def resolve(self, bits: int) -> int:
        """Replace wildcards by the rights they stand for (the reference's rules)."""
        if not bits & self.wildcard_mask:
            return bits
        if bits & self.all_bit:
            return self.admin_query_mask | self.resource_mask
        if bits & self.resource_wc_bit:
            return self.resource_mask
        out = bits & ~self.wildcard_mask
        for wbit, expansion in self._expansions:
            if bits & wbit:
                out |= expansion
        return out
