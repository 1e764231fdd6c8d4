"""The NGAC journal as resources: ``AccessCommand`` entries, and the one way to store them.

The engine never touches the store. It hands the entries of an accepted batch to a
:class:`CommandJournal`, which the composition root implements through the control plane's
own admission (``ControlPlane.apply(internal=True)``: the control plane is the only writer
of the store), and it learns of changes made by others from the control plane's one watch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gossamer.authz.pap import JournalEntry
from gossamer.model.access_policy import AccessCommand
from gossamer.types import API_VERSION, SYSTEM_NAMESPACE

#: where the journal's entries live, named ``c-<sequence>`` (ten digits: names sort in order)
JOURNAL_NAMESPACE = SYSTEM_NAMESPACE


class CommandJournal(Protocol):
    async def append(self, entries: Sequence[AccessCommand]) -> int:
        """Make ``entries`` durable, all or none, and return the store revision holding them.

        Raises (``StoreError`` when the store cannot write, e.g. a full disk) only if
        nothing was stored.
        """
        ...


def entry_name(seq: int) -> str:
    return f"c-{seq:010d}"


def entry_seq(name: str) -> int:
    """The sequence number of a journal entry's name (0 for a name that is not ``c-<n>``)."""
    digits = name.removeprefix("c-")
    return int(digits) if digits.isdigit() else 0


def to_command(name: str, entry: JournalEntry) -> AccessCommand:
    return AccessCommand.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": "AccessCommand",
            "metadata": {"name": name, "namespace": JOURNAL_NAMESPACE},
            "spec": entry.to_data(),
        }
    )


def from_command(command: AccessCommand) -> JournalEntry:
    return JournalEntry.from_data(command.spec.model_dump())
