"""``gossamer ca status``: the mesh CA's roots and intermediates, and a warning ahead of
expiry (docs/security.md, "The CA")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gossamer.cli import render
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import EXIT_ERROR, Server, Token, reporting_errors, stderr, stdout

#: warn when a CA certificate expires sooner than this
WARN_BEFORE = timedelta(days=30)

app = typer.Typer(help="The mesh's certificate authority.", no_args_is_help=True)


class Output(StrEnum):
    table = "table"
    json = "json"


class CaApi(ApiClient):
    def __enter__(self) -> CaApi:
        return self

    def status(self) -> dict[str, Any]:
        return self._dict("GET", "/v1/ca")


def expiry_warnings(body: dict[str, Any], now: datetime) -> tuple[list[str], bool]:
    """One line per root or intermediate that expired or expires within 30 days; and
    whether any has expired."""
    lines, expired = [], False
    for cert in [*body.get("roots", []), *body.get("intermediates", [])]:
        ends = datetime.fromisoformat(str(cert["notAfter"]))
        what = f"{cert['role']} {cert['subject']} (serial {cert['serial']})"
        if ends <= now:
            expired = True
            lines.append(
                f"error: {what} EXPIRED on {ends:%Y-%m-%d %H:%M}: no certificate from it "
                "verifies; rotate the root or plug a new intermediate now"
            )
        elif ends - now <= WARN_BEFORE:
            days = (ends - now).days
            lines.append(
                f"warning: {what} expires in {days} day{'' if days == 1 else 's'} "
                f"({ends:%Y-%m-%d}): rotate the root or plug a new intermediate before then"
            )
    return lines, expired


@app.command("status")
def status(
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Each root and intermediate: subject, serial and expiry; warns within 30 days of
    expiry (exit 1 once one has expired)."""
    with reporting_errors(), CaApi(server, token=token) as api:
        body = api.status()
    if output is Output.json:
        typer.echo(render.to_json(body))
    else:
        _table(body)
    lines, expired = expiry_warnings(body, datetime.now(UTC))
    err = stderr()
    for line in lines:
        err.print(Text(line, style="red" if line.startswith("error") else "yellow"))
    if expired:
        raise typer.Exit(EXIT_ERROR)


def _table(body: dict[str, Any]) -> None:
    out = stdout()
    signer = "an intermediate (root key offline)" if body.get("plugged") else "the root"
    out.print(f"trust domain {body.get('trustDomain')}; signing with {signer}")
    table = Table(box=None, pad_edge=False)
    for column in ("ROLE", "SUBJECT", "SERIAL", "NOT AFTER", "SIGNS"):
        table.add_column(column, no_wrap=column != "SUBJECT")
    for cert in [*body.get("roots", []), *body.get("intermediates", [])]:
        ends = datetime.fromisoformat(str(cert["notAfter"]))
        table.add_row(
            str(cert["role"]),
            str(cert["subject"]),
            str(cert["serial"]),
            ends.strftime("%Y-%m-%d %H:%M:%S %Z").strip(),
            "yes" if cert.get("signing") else "",
        )
    out.print(table)
