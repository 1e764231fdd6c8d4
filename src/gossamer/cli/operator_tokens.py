"""Operator tokens from the CLI: ``gossamer token create --operator [--read-only]
[--namespace NS ...] [--rights read,apply,delete]``, ``token create --decision-point NAME``,
``token list --operator`` and ``token revoke`` (the commands live in ``cli.tokens``;
docs/security.md "Credentials", docs/ngac.md "The API under NGAC")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from gossamer.cli.client import ApiClient
from gossamer.cli.common import reporting_errors, stderr, stdout
from gossamer.cli.output import Output, emit


class OperatorTokensApi(ApiClient):
    """The CLI's client of ``/v1/operator-tokens``."""

    def __enter__(self) -> OperatorTokensApi:
        return self

    def create_operator_token(
        self,
        name: str | None,
        read_only: bool,
        namespaces: list[str] | None = None,
        rights: list[str] | None = None,
        decision_point: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "readOnly": read_only}
        if decision_point:
            body["decisionPoint"] = True
        if namespaces:
            body["namespaces"] = namespaces
        if rights is not None:
            body["rights"] = rights
        return self._dict("POST", "/v1/operator-tokens", json=body, change=True)

    def operator_tokens(self) -> list[dict[str, Any]]:
        return list(self._dict("GET", "/v1/operator-tokens")["items"])

    def revoke_operator_token(self, name: str) -> dict[str, Any]:
        return self._dict("DELETE", f"/v1/operator-tokens/{name}", change=True)


def when(value: object) -> str:
    """An ISO timestamp as a table shows it (``-`` for none)."""
    if not isinstance(value, str):
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def create_operator_token(
    name: str | None,
    read_only: bool,
    namespaces: list[str] | None,
    rights: list[str] | None,
    output: Output,
    server: str,
    token: str | None,
    decision_point: bool = False,
) -> None:
    with reporting_errors(), OperatorTokensApi(server, token=token) as api:
        created = api.create_operator_token(name, read_only, namespaces, rights, decision_point)
    if output is not Output.table:
        emit(output, created, lambda: None)
        return
    typer.echo(str(created["token"]))
    stderr().print(
        f"{created['kind']} token {created['name']!r} (NGAC user {created['user']}) "
        f"{describe_operator_scope(created)}; shown only now. Use it with: export "
        "GOSSAMER_TOKEN=<token>, or --token, or put it in ~/.config/gossamer/token"
    )


def describe_operator_scope(t: dict[str, Any]) -> str:
    """What an operator token may do, in one cell: ``read, apply in team-a, team-c``."""
    if t.get("kind") == "decision-point":
        return "may read the NGAC graph and report decisions"
    if t.get("namespaces"):
        return f"may {', '.join(t.get('rights') or [])} in {', '.join(t['namespaces'])}"
    return "may read everything" if t.get("kind") == "read-only" else "may do everything"


def list_operator_tokens(output: Output, server: str, token: str | None) -> None:
    with reporting_errors(), OperatorTokensApi(server, token=token) as api:
        items = api.operator_tokens()
    if output is not Output.table:
        emit(output, items, lambda: None)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "KIND", "NGAC USER", "MAY", "CREATED", "REVOKED"):
        table.add_column(column, no_wrap=column != "MAY")
    for t in items:
        table.add_row(
            str(t["name"]),
            str(t["kind"]),
            str(t["user"]),
            describe_operator_scope(t).removeprefix("may "),
            when(t.get("createdAt")),
            when(t.get("revokedAt")),
        )
    stdout().print(table)
