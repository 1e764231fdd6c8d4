"""The merge of AccessPolicy resources (``authz.policy.merge``) redone only where some
resources changed.

An ``apply`` usually changes one small resource beside large unchanged ones; merging all
of them again (10-30 ms at 1000 services x 10k identities, once to validate and once to
apply) was most of an in-place change's cost. What a merge holds for a node, an
association, a prohibition or an obligation depends only on the resources naming it, so
only the names the changed resources name (before or after) are merged again, from every
resource that names them. Whatever a merge would refuse there (a node of two kinds, a
name defined twice) returns None: the caller merges in full, which says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gossamer.authz.elements import Kind
from gossamer.authz.policy import MergedPolicy
from gossamer.model.access_policy import AccessPolicy, AccessPolicySpec

_SECTIONS = (
    ("userAttributes", Kind.UA),
    ("objectAttributes", Kind.OA),
    ("users", Kind.U),
    ("objects", Kind.O),
)


@dataclass(frozen=True)
class Touched:
    """The names a change of some resources may have changed the merge of."""

    nodes: frozenset[str]
    pairs: frozenset[tuple[str, str]]
    prohibitions: frozenset[str]
    obligations: frozenset[str]


def _declared(spec: AccessPolicySpec) -> list[tuple[str, Kind, list[str]]]:
    out: list[tuple[str, Kind, list[str]]] = [(pc, Kind.PC, []) for pc in spec.policyClasses]
    for section, kind in _SECTIONS:
        out += [(name, kind, parents) for name, parents in getattr(spec, section).items()]
    return out


def _declaring(spec: AccessPolicySpec, names: frozenset[str]) -> list[tuple[str, Kind, list[str]]]:
    """What ``spec`` declares of ``names`` (a look-up per name: the spec may be large)."""
    out: list[tuple[str, Kind, list[str]]] = []
    if spec.policyClasses:
        pcs = set(spec.policyClasses)
        out += [(n, Kind.PC, []) for n in names if n in pcs]
    for section, kind in _SECTIONS:
        entries: dict[str, list[str]] = getattr(spec, section)
        if len(names) < len(entries):
            out += [(n, kind, entries[n]) for n in names if n in entries]
        else:
            out += [(n, kind, p) for n, p in entries.items() if n in names]
    return out


def remerge(
    old: MergedPolicy, before: Sequence[AccessPolicy], after: Sequence[AccessPolicy]
) -> tuple[MergedPolicy, Touched] | None:
    """``merge(after)``, from ``old == merge(before)``, and what may differ; None if a full
    merge must do it (the access rights changed, or the changed names do not merge)."""
    was = {p.key: p for p in before}
    now = {p.key: p for p in after}
    changed = [
        k
        for k in was.keys() | now.keys()
        if was.get(k) is not now.get(k) and was.get(k) != now.get(k)
    ]
    specs = [p.spec for k in changed for p in (was.get(k), now.get(k)) if p is not None]
    if any(
        (was[k].spec.accessRights if k in was else None)
        != (now[k].spec.accessRights if k in now else None)
        for k in changed
    ):
        return None
    touched = Touched(
        frozenset(name for spec in specs for name, _, _ in _declared(spec)),
        frozenset((a.userAttribute, a.target) for spec in specs for a in spec.associations),
        frozenset(p.name for spec in specs for p in spec.prohibitions),
        frozenset(o.name for spec in specs for o in spec.obligations),
    )
    nodes, pairs = dict(old.nodes), dict(old.associations)
    for name in touched.nodes:
        nodes.pop(name, None)
    for pair in touched.pairs:
        pairs.pop(pair, None)
    out = MergedPolicy(
        list(old.rights),
        nodes,
        pairs,
        [(p, w) for p, w in old.prohibitions if p.name not in touched.prohibitions],
        [o for o in old.obligations if o.name not in touched.obligations],
    )
    if not changed:
        return out, touched
    for policy in after:
        where, spec = str(policy.key), policy.spec
        for name, kind, parents in _declaring(spec, touched.nodes):
            seen = out.nodes.get(name)
            if seen is None:
                out.nodes[name] = (kind, list(parents), where)
            elif seen[0] != kind:
                return None
            else:
                out.nodes[name] = (kind, list(dict.fromkeys([*seen[1], *parents])), seen[2])
        for a in spec.associations:
            pair = (a.userAttribute, a.target)
            if pair in touched.pairs:
                out.associations[pair] = list(
                    dict.fromkeys([*out.associations.get(pair, []), *a.rights])
                )
        for p in spec.prohibitions:
            if p.name in touched.prohibitions:
                if any(q.name == p.name for q, _ in out.prohibitions):
                    return None
                out.prohibitions.append((p, where))
        for o in spec.obligations:
            if o.name in touched.obligations:
                if any(q.name == o.name for q in out.obligations):
                    return None
                out.obligations.append(o)
    return out, touched
