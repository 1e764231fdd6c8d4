"""What the layers around the AccessPolicy resources name (``authz.engine`` builds the graph
from the bootstrap entry, the merged policies, then the rest of the journal): a policy
change touching none of it can be made in place (``authz.policy_diff``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gossamer.authz.elements import ADMIN_NODES
from gossamer.authz.pap import JournalEntry
from gossamer.model.access_commands import (
    Assign,
    Associate,
    Command,
    CreateNode,
    CreateObligation,
    CreatePolicyClass,
    CreateProhibition,
    DeleteNode,
    DeleteObligation,
    DeleteProhibition,
    Dissociate,
    Obligation,
    ProhibitionSpec,
)


def prohibition_key(name: str) -> str:
    """Prohibition, obligation and node names are separate: keys in one set of names."""
    return f"\0prohibition:{name}"


def obligation_key(name: str) -> str:
    return f"\0obligation:{name}"


def command_names(cmd: Command) -> set[str]:
    """Every node, prohibition and obligation ``cmd`` names."""
    if isinstance(cmd, CreatePolicyClass | DeleteNode):
        return {cmd.name}
    if isinstance(cmd, CreateNode):
        return {cmd.name, *cmd.parents}
    if isinstance(cmd, Assign):
        return {cmd.child, *cmd.parents}
    if isinstance(cmd, Associate | Dissociate):
        return {cmd.userAttribute, cmd.target}
    if isinstance(cmd, CreateProhibition):
        return prohibition_names(cmd.prohibition)
    if isinstance(cmd, DeleteProhibition):
        return {prohibition_key(cmd.name)}
    if isinstance(cmd, CreateObligation):
        return obligation_names(cmd.obligation)
    if isinstance(cmd, DeleteObligation):
        return {obligation_key(cmd.name)}
    return set()  # resource rights: a plan refuses any change of rights


def prohibition_names(spec: ProhibitionSpec) -> set[str]:
    names = {prohibition_key(spec.name), *spec.include, *spec.exclude}
    if spec.subject is not None:
        names.add(spec.subject)
    return names


def obligation_names(o: Obligation) -> set[str]:
    return {obligation_key(o.name), o.author, *o.event.users, *o.event.targets}


@dataclass(frozen=True)
class Layers:
    """What the layers around the policies name."""

    #: every name the journal entries above the policies name
    above: frozenset[str]
    #: nodes the layer below made (bootstrap, administrative nodes)
    below_nodes: frozenset[str]
    #: associations the layer below made
    below_pairs: frozenset[tuple[str, str]]

    @staticmethod
    def of(boot: Iterable[Iterable[Command]], above: frozenset[str]) -> Layers:
        nodes: set[str] = set(ADMIN_NODES)
        pairs: set[tuple[str, str]] = set()
        extra: set[str] = set()
        for commands in boot:
            for cmd in commands:
                if isinstance(cmd, CreateNode | CreatePolicyClass):
                    nodes.add(cmd.name)
                elif isinstance(cmd, Associate):
                    pairs.add((cmd.userAttribute, cmd.target))
                else:  # anything else below the policies: keep clear of it altogether
                    extra |= command_names(cmd)
        return Layers(above | extra, frozenset(nodes), frozenset(pairs))


class LayerNames:
    """:class:`Layers` of a journal, what each entry names kept by entry name (the journal
    only grows between rebuilds)."""

    def __init__(self) -> None:
        self._names: dict[str, frozenset[str]] = {}

    def layers(self, entries: Mapping[str, JournalEntry]) -> Layers:
        names = self._names
        for gone in names.keys() - entries.keys():
            del names[gone]
        boot: list[tuple[Command, ...]] = []
        above: set[str] = set()
        for name, entry in entries.items():
            if entry.cause == "bootstrap":
                boot.append(entry.commands)
                continue
            found = names.get(name)
            if found is None:
                found = names[name] = frozenset(
                    n for cmd in entry.commands for n in command_names(cmd)
                )
            above |= found
        return Layers.of(boot, frozenset(above))
