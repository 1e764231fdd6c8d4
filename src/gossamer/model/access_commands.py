"""Administrative commands and obligations, as data (pydantic v2).

One vocabulary for everything that changes the graph at run time: the administration API,
the CLI and obligation responses all speak these commands. Obligation responses may use
``{user}``, ``{target}``, ``{operation}`` and the event's own fields (e.g. ``{parent}``)
as placeholders in any string.

Plain data with no behaviour of the graph, so it lives in the model: ``AccessPolicy`` and
``AccessCommand`` resources hold these, and ``gossamer.authz`` carries them out.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Cmd(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


NonEmpty = Annotated[list[str], Field(min_length=1)]


class CreatePolicyClass(_Cmd):
    op: Literal["create_policy_class"]
    name: str = Field(min_length=1)


class CreateNode(_Cmd):
    op: Literal["create_user_attribute", "create_object_attribute", "create_user", "create_object"]
    name: str = Field(min_length=1)
    parents: NonEmpty
    properties: dict[str, str] = Field(default_factory=dict)


class DeleteNode(_Cmd):
    op: Literal["delete_node"]
    name: str


class Assign(_Cmd):
    op: Literal["assign", "deassign"]
    child: str
    parents: NonEmpty


class Associate(_Cmd):
    op: Literal["associate"]
    userAttribute: str
    target: str
    rights: NonEmpty


class Dissociate(_Cmd):
    op: Literal["dissociate"]
    userAttribute: str
    target: str


class ProhibitionSpec(BaseModel):
    """A prohibition: ``subject`` is a user or user attribute; with ``process`` it is a
    process prohibition and ``subject`` (optional) is the user the process runs as."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    subject: str | None = None
    process: str | None = None
    rights: NonEmpty
    include: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    conjunctive: bool = False

    @model_validator(mode="after")
    def _needs_subject(self) -> ProhibitionSpec:
        if self.subject is None and self.process is None:
            raise ValueError("give a subject (user or user attribute) or a process")
        if not self.include and not self.exclude:
            raise ValueError("give at least one container in include or exclude")
        return self


class CreateProhibition(_Cmd):
    op: Literal["create_prohibition"]
    prohibition: ProhibitionSpec


class DeleteProhibition(_Cmd):
    op: Literal["delete_prohibition"]
    name: str


class EventPattern(BaseModel):
    """Which events an obligation answers. An empty list matches anything."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: users or user attributes (an event matches when its user is or is inside one)
    users: list[str] = Field(default_factory=list)
    #: operation names: administrative command ops or resource rights (e.g. ``POST``)
    operations: list[str] = Field(default_factory=list)
    #: nodes (an event matches when its target is or is inside one)
    targets: list[str] = Field(default_factory=list)


class Obligation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1)
    #: the user whose administrative rights the response runs with
    author: str
    event: EventPattern
    response: Annotated[list[Command], Field(min_length=1)]


class CreateObligation(_Cmd):
    op: Literal["create_obligation"]
    obligation: Obligation


class DeleteObligation(_Cmd):
    op: Literal["delete_obligation"]
    name: str


class SetResourceRights(_Cmd):
    op: Literal["set_resource_access_rights"]
    rights: NonEmpty


Command = Annotated[
    CreatePolicyClass
    | CreateNode
    | DeleteNode
    | Assign
    | Associate
    | Dissociate
    | CreateProhibition
    | DeleteProhibition
    | CreateObligation
    | DeleteObligation
    | SetResourceRights,
    Field(discriminator="op"),
]
Obligation.model_rebuild()


class _CommandList(BaseModel):
    commands: list[Command]


def parse_commands(data: list[dict[str, Any]]) -> list[Command]:
    """Validate raw command dicts (raises pydantic's ValidationError)."""
    return _CommandList.model_validate({"commands": data}).commands


def substitute(cmd: Command, values: dict[str, str]) -> Command:
    """The command with ``{placeholder}`` strings replaced from ``values``."""

    def sub(x: Any) -> Any:
        if isinstance(x, str):
            for k, v in values.items():
                x = x.replace("{" + k + "}", v)
            return x
        if isinstance(x, list):
            return [sub(i) for i in x]
        if isinstance(x, dict):
            return {k: sub(v) for k, v in x.items()}
        return x

    return parse_commands([sub(cmd.model_dump())])[0]
