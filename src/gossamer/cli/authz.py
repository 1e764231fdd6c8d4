"""``gossamer authz``: ask the NGAC engine, from AccessPolicy files (``-f``, no server
needed) or from the running control plane (no ``-f``: ``--server``; decisions made there
are recorded in its audit trail, which ``gossamer authz audit`` reads).

``check`` exits 0 when the decision is allow, 1 when it is deny, 2 on bad input.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from gossamer.authz.decider import Decider
from gossamer.authz.engine import build_state
from gossamer.authz.explain import access, explain, explanation_from_data
from gossamer.authz.pap import JournalEntry, bootstrap_commands
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors
from gossamer.cli.yaml_files import load_policies
from gossamer.errors import GossamerError

app = typer.Typer(
    help="NGAC access decisions: check, explain, access (from files or the control plane), "
    "and the control plane's audit trail.",
    no_args_is_help=True,
)

Files = Annotated[
    list[Path],
    typer.Option("-f", "--file", help="AccessPolicy YAML file (repeat for several; they merge)."),
]
Output = Annotated[str, typer.Option("-o", "--output", help="text or json")]
Process = Annotated[str | None, typer.Option("--process", help="the process asking")]


def _engine(files: list[Path]) -> Decider:
    boot = JournalEntry(None, "bootstrap", tuple(bootstrap_commands()))
    return build_state(load_policies(files), [boot]).decider


def _fail(e: GossamerError) -> typer.Exit:
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(2)


def _emit(data: dict[str, Any], output: str, text: str) -> None:
    if output == "json":
        typer.echo(json.dumps(data, indent=2))
    elif output == "text":
        typer.echo(text)
    else:
        raise typer.BadParameter("use 'text' or 'json'", param_hint="-o")


@app.command()
def check(
    user: str,
    target: str,
    right: str,
    file: Files = [],  # noqa: B006 (typer default)
    process: Process = None,
    output: Output = "text",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Decide whether USER holds RIGHT on TARGET."""
    if not file:
        data = _remote(
            server, token, "check", user=user, target=target, right=right, process=process
        )
        allowed = data["decision"] == "allow"
        _emit(data, output, f"{data['decision']} ({data['rule']})")
        raise typer.Exit(0 if allowed else 1)
    try:
        d = _engine(file)
        g = d.graph
        u, t = g.id(user, "user"), g.id(target, "target")
        bits = d.privileges(u, t, process)
        allowed = bool(bits & g.rights.bit(right))
        denying = [
            p.name
            for p in d.satisfied_prohibitions(u, t, process)
            if p.rights & g.rights.bit(right)
        ]
    except GossamerError as e:
        raise _fail(e) from None
    decision = "allow" if allowed else "deny"
    data = {
        "decision": decision,
        "user": user,
        "target": target,
        "right": right,
        "process": process,
        "rights": g.rights.names(bits),
        "prohibitions": denying,
    }
    reason = f" (prohibited by {', '.join(denying)})" if denying else ""
    _emit(data, output, f"{decision}{reason}")
    raise typer.Exit(0 if allowed else 1)


@app.command("explain")
def explain_cmd(
    user: str,
    target: str,
    file: Files = [],  # noqa: B006
    process: Process = None,
    output: Output = "text",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Per policy class, the paths that grant each right and the prohibitions that deny."""
    try:
        if file:
            e = explain(_engine(file).graph, user, target, process)
        else:
            e = explanation_from_data(
                _remote(server, token, "explain", user=user, target=target, process=process)
            )
    except GossamerError as err:
        raise _fail(err) from None
    lines = [f"{user} on {target}: {', '.join(e.rights) or 'no rights'}"]
    for pc in e.policyClasses:
        lines.append(f"  policy class {pc.policyClass}: {', '.join(pc.rights) or 'nothing'}")
        for path in pc.paths:
            lines.append("    path " + " -> ".join(s.node for s in path))
            for step in path:
                for grant in step.grants:
                    via = "; ".join(" -> ".join(p) for p in grant.userPaths)
                    lines.append(
                        f"      {grant.userAttribute} grants {', '.join(grant.rights)} "
                        f"on {step.node} (via {via})"
                    )
    for name, rights in e.prohibitions.items():
        lines.append(f"  prohibition {name} denies {', '.join(rights)}")
    _emit(e.to_data(), output, "\n".join(lines))


@app.command("access")
def access_cmd(
    user: str,
    file: Files = [],  # noqa: B006
    process: Process = None,
    output: Output = "text",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Every target USER holds rights on, with those rights."""
    try:
        if file:
            result = access(_engine(file), user, process)
        else:
            result = _remote(server, token, "access", user=user, process=process)["access"]
    except GossamerError as e:
        raise _fail(e) from None
    text = "\n".join(f"{t}: {', '.join(r)}" for t, r in result.items()) or "no access"
    _emit({"user": user, "access": result}, output, text)


@app.command("audit")
def audit_cmd(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20,
    user: Annotated[str | None, typer.Option("--user", help="only decisions about USER")] = None,
    output: Output = "text",
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """The control plane's newest access decisions: who asked, about what, and why."""
    items = _remote(server, token, "audit", limit=str(limit), user=user)["items"]
    lines = [
        f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(i['at']))}  {i['decision']:5}  "
        f"{i['user']} {i['right']} {i['target']}  ({i['rule']})"
        + (f"  asked by {i['caller']}" if i["caller"] else "")
        for i in items
    ]
    _emit({"items": items}, output, "\n".join(lines) or "no decisions recorded")


def _remote(server: str, token: str | None, what: str, **params: str | None) -> dict[str, Any]:
    """Ask the running control plane; errors leave as CLI errors (exit 1, or 3 unreachable)."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        return api.authz(what, **params)
    raise AssertionError("unreachable")  # reporting_errors exits on any error
