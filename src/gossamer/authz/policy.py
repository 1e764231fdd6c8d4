"""AccessPolicy resources -> one graph.

Merging rules: access rights are the union of every resource's ``accessRights`` (HTTP
methods when none says); a node may appear in several resources with the same kind and
gets the union of its parents; an association named twice gets the union of its rights;
prohibition and obligation names must be unique across resources. Everything is checked
and applied in one graph transaction: one bad reference and nothing is applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from gossamer.authz.graph import Graph, Kind
from gossamer.authz.prohibitions import Prohibition
from gossamer.authz.rights import HTTP_METHODS
from gossamer.errors import FieldError, GossamerError, ValidationError
from gossamer.model.access_commands import Obligation, ProhibitionSpec
from gossamer.model.access_policy import AccessPolicy


@dataclass
class MergedPolicy:
    rights: list[str]
    #: name -> (kind, parents, where it was declared)
    nodes: dict[str, tuple[Kind, list[str], str]] = field(default_factory=dict)
    associations: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    prohibitions: list[tuple[ProhibitionSpec, str]] = field(default_factory=list)
    obligations: list[Obligation] = field(default_factory=list)


def merge(policies: Sequence[AccessPolicy]) -> MergedPolicy:
    errors: list[FieldError] = []
    declared = [r for p in policies if p.spec.accessRights for r in p.spec.accessRights]
    merged = MergedPolicy(list(dict.fromkeys(declared)) if declared else list(HTTP_METHODS))
    seen_prohibitions: dict[str, str] = {}
    seen_obligations: dict[str, str] = {}
    for policy in policies:
        where = str(policy.key)
        spec = policy.spec
        groups: list[tuple[str, Kind, dict[str, list[str]]]] = [
            ("policyClasses", Kind.PC, {pc: [] for pc in spec.policyClasses}),
            ("userAttributes", Kind.UA, spec.userAttributes),
            ("objectAttributes", Kind.OA, spec.objectAttributes),
            ("users", Kind.U, spec.users),
            ("objects", Kind.O, spec.objects),
        ]
        for section, kind, entries in groups:
            for name, parents in entries.items():
                old = merged.nodes.get(name)
                if old is None:
                    merged.nodes[name] = (kind, list(parents), where)
                elif old[0] != kind:
                    errors.append(
                        FieldError(
                            f"{name!r} is a {kind.name} here but a {old[0].name} in {old[2]}; "
                            "a node has one kind",
                            f"spec.{section}.{name}",
                            where,
                        )
                    )
                else:
                    merged.nodes[name] = (kind, list(dict.fromkeys([*old[1], *parents])), old[2])
        for a in spec.associations:
            key = (a.userAttribute, a.target)
            merged.associations[key] = list(
                dict.fromkeys([*merged.associations.get(key, []), *a.rights])
            )
        for i, p in enumerate(spec.prohibitions):
            if p.name in seen_prohibitions:
                errors.append(
                    FieldError(
                        f"prohibition {p.name!r} is also defined in "
                        f"{seen_prohibitions[p.name]}; names must be unique",
                        f"spec.prohibitions[{i}].name",
                        where,
                    )
                )
            seen_prohibitions[p.name] = where
            merged.prohibitions.append((p, where))
        for i, o in enumerate(spec.obligations):
            if o.name in seen_obligations:
                errors.append(
                    FieldError(
                        f"obligation {o.name!r} is also defined in "
                        f"{seen_obligations[o.name]}; names must be unique",
                        f"spec.obligations[{i}].name",
                        where,
                    )
                )
            seen_obligations[o.name] = where
            merged.obligations.append(o)
    if errors:
        raise ValidationError(errors)
    return merged


def prohibition_from_spec(graph: Graph, spec: ProhibitionSpec) -> Prohibition:
    containers = tuple((graph.id(c, "include"), False) for c in spec.include) + tuple(
        (graph.id(c, "exclude"), True) for c in spec.exclude
    )
    subject = graph.id(spec.subject, "subject") if spec.subject is not None else None
    return Prohibition(
        name=spec.name,
        rights=graph.rights.encode(spec.rights),
        containers=containers,
        conjunctive=spec.conjunctive,
        subject=subject if spec.process is None else None,
        process=spec.process,
        process_user=subject if spec.process is not None else None,
    )


def apply(graph: Graph, merged: MergedPolicy) -> None:
    """Add the merged policy to ``graph`` in one transaction (all or nothing)."""
    with graph.transaction():
        current = graph.rights.resource_rights
        graph.set_resource_rights(list(dict.fromkeys([*current, *merged.rights])))
        pending = dict(merged.nodes)
        while pending:
            ready = [
                n
                for n, (_, parents, _) in pending.items()
                if all(p not in pending for p in parents)
            ]
            if not ready:
                raise ValidationError(
                    [FieldError(f"assignments form a cycle among {sorted(pending)[:5]}", "spec")]
                )
            for name in ready:
                kind, parents, where = pending.pop(name)
                with _at(where):
                    _ensure(graph, name, kind, parents)
        for (ua, target), rights in merged.associations.items():
            with _at(f"association {ua} -> {target}"):
                graph.associate(ua, target, rights)
        for spec, where in merged.prohibitions:
            with _at(where):
                graph.add_prohibition(prohibition_from_spec(graph, spec))


def _ensure(graph: Graph, name: str, kind: Kind, parents: list[str]) -> None:
    node = graph.find(name)
    if node is None:
        graph.create_node(name, kind, parents)
        return
    if graph.kind(node) != kind:
        raise ValidationError(
            [
                FieldError(
                    f"{name!r} already exists as a {graph.kind(node).name}, not a {kind.name}", name
                )
            ]
        )
    graph.assign(name, parents)


@contextmanager
def _at(where: str) -> Iterator[None]:
    """Name the resource in errors raised inside the block."""
    try:
        yield
    except ValidationError as e:
        raise ValidationError(
            [FieldError(x.message, x.path, x.resource or where, x.source) for x in e.errors]
        ) from None
    except GossamerError as e:
        raise ValidationError([FieldError(str(e), "", where)]) from None


def build(
    policies: Sequence[AccessPolicy], graph: Graph | None = None
) -> tuple[Graph, list[Obligation]]:
    """A graph holding ``policies`` (a new one unless given) and their obligations."""
    merged = merge(policies)
    g = graph if graph is not None else Graph(merged.rights)
    apply(g, merged)
    return g, merged.obligations
