"""The policy administration point: administrative commands, checked and transactional.

Every command is checked against the caller's administrative rights *in the graph itself*
(the rights the reference's admin operations require, e.g. ``assign`` on the child and
``assign_to`` on each parent), using the same decisions as resource access. A batch of
commands is one transaction: if any command is refused, none is applied. Accepted batches
are appended to :attr:`PAP.journal` (what the store persists) and their events go to the
event processor, whose obligation responses are batches of their own.

A bootstrap administrator (user ``admin`` in user attribute ``gossamer:admins`` by
default) holds ``*`` on ``PM_ADMIN:base``: it may create policy classes and, through the
reference's rule for nodes assigned directly to a policy class, administer those nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gossamer.authz.decider import Decider
from gossamer.authz.graph import (
    ADMIN_BASE,
    ADMIN_OBLIGATIONS,
    ADMIN_PC,
    ADMIN_POLICY_CLASSES,
    ADMIN_PROHIBITIONS,
    Graph,
    Kind,
)
from gossamer.authz.obligations import Event, EventProcessor, Firing, ObligationSet
from gossamer.authz.policy import prohibition_from_spec
from gossamer.errors import AccessDeniedError, FieldError, ValidationError
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
    SetResourceRights,
    parse_commands,
)

_CREATE = {
    "create_user_attribute": Kind.UA,
    "create_object_attribute": Kind.OA,
    "create_user": Kind.U,
    "create_object": Kind.O,
}
_KIND_WORD = {
    Kind.PC: "policy_class",
    Kind.UA: "user_attribute",
    Kind.OA: "object_attribute",
    Kind.U: "user",
    Kind.O: "object",
}


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One accepted batch: who ran it, why, and the commands (in order)."""

    user: str | None
    cause: str
    commands: tuple[Command, ...]

    def to_data(self) -> dict[str, object]:
        return {
            "user": self.user,
            "cause": self.cause,
            "commands": [c.model_dump(exclude_defaults=False) for c in self.commands],
        }

    @staticmethod
    def from_data(data: dict[str, object]) -> JournalEntry:
        raw = data["commands"]
        assert isinstance(raw, list)
        user = data.get("user")
        return JournalEntry(
            user if isinstance(user, str) else None, str(data["cause"]), tuple(parse_commands(raw))
        )


def bootstrap_commands(admin: str = "admin") -> list[Command]:
    return parse_commands(
        [
            {"op": "create_user_attribute", "name": "gossamer:admins", "parents": [ADMIN_PC]},
            {"op": "create_user", "name": admin, "parents": ["gossamer:admins"]},
            {
                "op": "associate",
                "userAttribute": "gossamer:admins",
                "target": ADMIN_BASE,
                "rights": ["*"],
            },
        ]
    )


@dataclass
class PAP:
    graph: Graph
    decider: Decider
    obligations: ObligationSet = field(init=False)
    epp: EventProcessor = field(init=False)
    #: accepted batches not yet taken by :meth:`take_journal`
    journal: list[JournalEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.obligations = ObligationSet(self.graph)
        self.epp = EventProcessor(self)

    def retire(self) -> None:
        """Replaced by a rebuilt engine: drop the event processor, which refers back to
        this PAP (a cycle that would keep the old graph alive until a full collection)."""
        del self.epp

    def bootstrap(self, admin: str = "admin") -> None:
        """Create the bootstrap administrator (only if there is none yet)."""
        if self.graph.find("gossamer:admins") is None:
            self.execute(None, bootstrap_commands(admin), cause="bootstrap")

    def take_journal(self) -> list[JournalEntry]:
        out, self.journal = self.journal, []
        return out

    def execute(
        self,
        user: str | None,
        commands: Sequence[Command],
        *,
        cause: str = "admin",
        fire: bool = True,
    ) -> list[Event]:
        """Check and apply ``commands`` as ``user`` (``None``: the system, unchecked), all or
        nothing; then (if ``fire``) run the obligations their events match."""
        events: list[Event] = []
        journal_mark = len(self.journal)
        try:
            with self.graph.transaction():
                for i, cmd in enumerate(commands):
                    try:
                        if user is not None:
                            self._check(user, cmd)
                        events.extend(self._apply(user or "system", cmd))
                    except ValidationError as e:
                        raise ValidationError(
                            [
                                FieldError(
                                    x.message,
                                    f"commands[{i}].{x.path}".rstrip("."),
                                    x.resource,
                                    x.source,
                                )
                                for x in e.errors
                            ]
                        ) from None
                self.journal.append(JournalEntry(user, cause, tuple(commands)))
                if fire:
                    self.fire(events)
        except BaseException:
            del self.journal[journal_mark:]
            raise
        return events

    def fire(self, events: list[Event]) -> list[Firing]:
        return self.epp.process(events) if len(self.obligations) else []

    # ------------------------------------------------------------------ checks
    def _require(self, user: str, target: str, right: str) -> None:
        g = self.graph
        u = g.id(user, "user")
        t = g.find(target)
        if t is None:
            return  # the command itself will report the missing node
        if not self.decider.privileges(u, t) & g.rights.bit(right):
            raise AccessDeniedError(
                f"{user!r} may not do this: it needs {right!r} on {target!r}; ask an "
                f"administrator to associate one of its attributes with {target!r} granting "
                f"{right!r}"
            )

    def _check(self, user: str, cmd: Command) -> None:
        g = self.graph
        req = self._require
        if isinstance(cmd, CreatePolicyClass):
            req(user, ADMIN_POLICY_CLASSES, "create_policy_class")
        elif isinstance(cmd, CreateNode):
            for p in cmd.parents:
                req(user, p, cmd.op)
        elif isinstance(cmd, DeleteNode):
            node = g.id(cmd.name, "name")
            word = _KIND_WORD[g.kind(node)]
            if g.kind(node) == Kind.PC:
                req(user, ADMIN_POLICY_CLASSES, "delete_policy_class")
            else:
                req(user, cmd.name, f"delete_{word}")
                for parent in g.parents(node):
                    req(user, g.name(parent), f"delete_{word}_from")
        elif isinstance(cmd, Assign):
            req(user, cmd.child, cmd.op)
            for p in cmd.parents:
                req(user, p, "assign_to" if cmd.op == "assign" else "deassign_from")
        elif isinstance(cmd, Associate):
            req(user, cmd.userAttribute, "associate")
            req(user, cmd.target, "associate_to")
        elif isinstance(cmd, Dissociate):
            req(user, cmd.userAttribute, "dissociate")
            req(user, cmd.target, "dissociate_from")
        elif isinstance(cmd, CreateProhibition | DeleteProhibition):
            self._check_prohibition(user, cmd)
        elif isinstance(cmd, CreateObligation | DeleteObligation):
            right = "create_obligation" if cmd.op == "create_obligation" else "delete_obligation"
            req(user, ADMIN_OBLIGATIONS, right)
        elif isinstance(cmd, SetResourceRights):
            req(user, ADMIN_BASE, "set_resource_access_rights")

    def _check_prohibition(self, user: str, cmd: CreateProhibition | DeleteProhibition) -> None:
        verb = "create" if isinstance(cmd, CreateProhibition) else "delete"
        if isinstance(cmd, CreateProhibition):
            spec = cmd.prohibition
            subject, process = spec.subject, spec.process
            include, exclude = spec.include, spec.exclude
        else:
            p = self.graph.prohibitions.get(cmd.name)
            if p is None:
                return
            g = self.graph
            subject = (
                g.name(p.subject)
                if p.subject is not None
                else (g.name(p.process_user) if p.process_user is not None else None)
            )
            process = p.process
            include = [g.name(c) for c, comp in p.containers if not comp]
            exclude = [g.name(c) for c, comp in p.containers if comp]
        if process is not None:
            self._require(user, subject or ADMIN_PROHIBITIONS, f"{verb}_process_prohibition")
        else:
            assert subject is not None
            self._require(user, subject, f"{verb}_prohibition")
        for c in include:
            self._require(user, c, f"{verb}_prohibition")
        for c in exclude:
            self._require(user, c, f"{verb}_prohibition_with_complement_container")

    # ------------------------------------------------------------------ changes
    def _apply(self, user: str, cmd: Command) -> list[Event]:
        g = self.graph
        if isinstance(cmd, CreatePolicyClass):
            g.create_node(cmd.name, Kind.PC)
            return [Event(user, cmd.op, cmd.name)]
        if isinstance(cmd, CreateNode):
            g.create_node(cmd.name, _CREATE[cmd.op], cmd.parents, cmd.properties or None)
            return [Event(user, cmd.op, cmd.name, (("parent", p),)) for p in cmd.parents]
        if isinstance(cmd, DeleteNode):
            g.delete_node(cmd.name)
            return [Event(user, cmd.op, cmd.name)]
        if isinstance(cmd, Assign):
            (g.assign if cmd.op == "assign" else g.deassign)(cmd.child, cmd.parents)
            return [Event(user, cmd.op, cmd.child, (("parent", p),)) for p in cmd.parents]
        if isinstance(cmd, Associate):
            g.associate(cmd.userAttribute, cmd.target, cmd.rights)
            return [Event(user, cmd.op, cmd.target, (("userAttribute", cmd.userAttribute),))]
        if isinstance(cmd, Dissociate):
            g.dissociate(cmd.userAttribute, cmd.target)
            return [Event(user, cmd.op, cmd.target, (("userAttribute", cmd.userAttribute),))]
        if isinstance(cmd, CreateProhibition):
            g.add_prohibition(prohibition_from_spec(g, cmd.prohibition))
            return [Event(user, cmd.op, cmd.prohibition.subject or ADMIN_PROHIBITIONS)]
        if isinstance(cmd, DeleteProhibition):
            g.remove_prohibition(cmd.name)
            return [Event(user, cmd.op, ADMIN_PROHIBITIONS)]
        if isinstance(cmd, CreateObligation):
            self.obligations.add(cmd.obligation)
            return [Event(user, cmd.op, ADMIN_OBLIGATIONS)]
        if isinstance(cmd, DeleteObligation):
            self.obligations.remove(cmd.name)
            return [Event(user, cmd.op, ADMIN_OBLIGATIONS)]
        g.set_resource_rights(cmd.rights)
        return [Event(user, cmd.op, ADMIN_BASE)]
