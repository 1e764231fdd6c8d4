"""Decisions, explanations and administration as the control plane's API offers them,
each decision recorded in the audit trail with the rule behind it."""

from __future__ import annotations

from typing import Any

import pydantic

from gossamer.authz.audit import AuditEntry, AuditLog, now
from gossamer.authz.engine import AuthzEngine
from gossamer.errors import FieldError, GossamerError, ValidationError, field_errors
from gossamer.model.access_commands import parse_commands
from gossamer.model.access_policy import AccessPolicy
from gossamer.model.snapshot import ModelSnapshot


class AuthzService:
    def __init__(self, engine: AuthzEngine, audit: AuditLog) -> None:
        self.engine = engine
        self.audit = audit

    def check(
        self, user: str, target: str, right: str, process: str | None = None, caller: str = ""
    ) -> AuditEntry:
        """Decide, explain in one line, and record."""
        rights = self.engine.privileges(user, target, process)
        allowed = right in rights or "*" in rights
        entry = AuditEntry(
            now(),
            caller,
            user,
            target,
            right,
            process,
            "allow" if allowed else "deny",
            self._rule(user, target, right, process, allowed),
            rights,
        )
        self.audit.record(entry)
        return entry

    def _rule(self, user: str, target: str, right: str, process: str | None, allowed: bool) -> str:
        why = self.engine.explain(user, target, process)
        if allowed:
            pcs = ", ".join(pc.policyClass for pc in why.policyClasses)
            return f"granted in every policy class containing {target} ({pcs})"
        removed = [name for name, denied in why.prohibitions.items() if right in denied]
        if removed:
            return f"prohibited by {', '.join(sorted(removed))}"
        missing = [pc.policyClass for pc in why.policyClasses if right not in pc.rights]
        if missing:
            return f"no association grants {right!r} in policy class {', '.join(missing)}"
        return f"{target} is in no policy class: nothing is granted on it"

    def explain(self, user: str, target: str, process: str | None = None) -> dict[str, Any]:
        return self.engine.explain(user, target, process).to_data()

    def access(self, user: str, process: str | None = None) -> dict[str, list[str]]:
        return self.engine.access(user, process)

    async def execute(self, user: str, commands: list[dict[str, Any]]) -> int:
        """Run an administrative batch as ``user``; returns how many obligations fired."""
        try:
            parsed = parse_commands(commands)
        except pydantic.ValidationError as e:
            raise ValidationError(field_errors(e, root=("commands",), skip=1)) from None
        events = await self.engine.execute(user, parsed)
        return len(events)

    async def validate_policies(self, model: ModelSnapshot) -> list[FieldError]:
        """Would the AccessPolicy resources of ``model`` (with the journal) make a valid
        graph? Used by the control plane before it stores an apply."""
        policies = [r for r in model.resources.values() if isinstance(r, AccessPolicy)]
        try:
            await self.engine.check_policies(policies)
        except GossamerError as e:
            return [FieldError(f"the access policies would not make a valid graph: {e}")]
        return []
