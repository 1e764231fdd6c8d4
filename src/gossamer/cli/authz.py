"""``gossamer authz``: ask the NGAC engine, from AccessPolicy files (``-f``, no server
needed) or from the running control plane (no ``-f``: ``--server``; decisions made there
are recorded in its audit trail, which ``gossamer authz audit`` reads).

``check`` exits 0 when the decision is allow, 1 when it is deny, 2 on bad input.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer

from gossamer.authz.decider import Decider
from gossamer.authz.engine import build_state
from gossamer.authz.explain import Explanation, access, explain, explanation_from_data
from gossamer.authz.graph import Graph
from gossamer.authz.mesh_names import parse_target, path_of
from gossamer.authz.pap import JournalEntry, bootstrap_commands
from gossamer.authz.requests import deciding_target
from gossamer.cli import authz_serve
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors
from gossamer.cli.output import Output, OutputOption, emit
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
Process = Annotated[str | None, typer.Option("--process", help="the process asking")]
RequestPath = Annotated[
    str | None,
    typer.Option(
        "--path",
        help="decide a request for this path (raw, as sent; with -f) to the service TARGET "
        "(svc:<ns>/<svc>): on its deepest prefix attribute covering the path as Envoy "
        "normalises it, query string ignored",
    ),
]


def _engine(files: list[Path]) -> Decider:
    boot = JournalEntry(None, "bootstrap", tuple(bootstrap_commands()))
    return build_state(load_policies(files), [boot]).decider


def _deciding(graph: Graph, service: str, path: str) -> str:
    """The attribute deciding a request for raw ``path`` to ``service`` (its attribute's
    name), on the path Envoy normalises it to, as the RBAC and the decision point decide."""
    parsed = parse_target(service)
    if parsed is None or parsed[1] is not None:
        raise typer.BadParameter(
            f"with --path, TARGET is a service's attribute svc:<ns>/<svc>, not {service!r}",
            param_hint="TARGET",
        )
    return deciding_target(graph, parsed[0], path) or service


def _fail(e: GossamerError) -> typer.Exit:
    typer.echo(f"error: {e}", err=True)
    return typer.Exit(2)


def _emit(data: dict[str, Any], output: Output, text: str) -> None:
    emit(output, data, lambda: typer.echo(text))


@app.command()
def check(
    user: str,
    target: str,
    right: str,
    file: Files = [],  # noqa: B006 (typer default)
    process: Process = None,
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
    path: RequestPath = None,
) -> None:
    """Decide whether USER holds RIGHT on TARGET (with --path: a request to a service)."""
    if path is not None and not file:
        raise typer.BadParameter("--path needs the policy files (-f)", param_hint="--path")
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
        if path is not None:
            target = _deciding(g, target, path)
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
    if path is not None:
        data["path"] = path_of(path)
        reason += f" (decided on {target} for {data['path']})"
    _emit(data, output, f"{decision}{reason}")
    raise typer.Exit(0 if allowed else 1)


@app.command("explain")
def explain_cmd(
    user: str,
    target: str,
    file: Files = [],  # noqa: B006
    process: Process = None,
    output: OutputOption = Output.table,
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
    lines = [f"{user} on {target}: {', '.join(e.rights) or 'no rights'}", *_paths(e)]
    _emit(e.to_data(), output, "\n".join(lines))


def _paths(e: Explanation, indent: str = "  ") -> list[str]:
    """Per policy class, the graph paths and the grants on them; then the prohibitions."""
    lines = []
    for pc in e.policyClasses:
        lines.append(f"{indent}policy class {pc.policyClass}: {', '.join(pc.rights) or 'nothing'}")
        for path in pc.paths:
            lines.append(f"{indent}  path " + " -> ".join(s.node for s in path))
            for step in path:
                for grant in step.grants:
                    via = "; ".join(" -> ".join(p) for p in grant.userPaths)
                    lines.append(
                        f"{indent}    {grant.userAttribute} grants {', '.join(grant.rights)} "
                        f"on {step.node} (via {via})"
                    )
    for name, rights in e.prohibitions.items():
        lines.append(f"{indent}prohibition {name} denies {', '.join(rights)}")
    return lines


@app.command("access")
def access_cmd(
    user: str,
    file: Files = [],  # noqa: B006
    process: Process = None,
    output: OutputOption = Output.table,
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
    output: OutputOption = Output.table,
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


@app.command("why")
def why_cmd(
    request_id: Annotated[str, typer.Argument(help="the request id (x-request-id; a 403's body)")],
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Why a request was denied (or would be, in audit mode): who, what, the decision, and
    the graph paths or prohibition behind it, on the graph as it is now."""
    data = _remote(server, token, "decisions/" + quote(request_id, safe=""))
    lines = []
    for d in data["decisions"]:
        lines += _why_lines(d)
    _emit(data, output, "\n".join(lines))


def _why_lines(d: dict[str, Any]) -> list[str]:
    by = d["proxy"] or d["reporter"] or "?"
    who = d["caller"] or "no verified caller"
    if d["endUser"]:
        who += f" for end user {d['endUser']}"
    why = d["why"]
    lines = [
        f"request {d['requestId']}: {d['decision']} ({d['source']}) by {by} at {_when(d['at'])}",
        f"  caller:  {who}",
        f"  request: {d['method']} {d['path']} to {d['service']}",
        f"  reason:  {d['reason'] or '-'}",
        f"  now:     {'allowed' if why['allowed'] else 'denied'}: {why['rule']}"
        + (f" (decided on {why['target']})" if why.get("target") else ""),
    ]
    if why.get("explanation"):
        lines += _paths(explanation_from_data(why["explanation"]), indent="  ")
    return lines


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


@app.command("denials")
def denials_cmd(
    service: Annotated[
        str | None, typer.Option("--service", help="only requests to NS/SVC")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 20,
    all_decisions: Annotated[
        bool, typer.Option("--all", help="also would-deny (audit mode) and allow records")
    ] = False,
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """The newest request denials in the control plane's audit trail, newest first."""
    decision = None if all_decisions else "deny"
    params = {"limit": str(limit), "service": service, "decision": decision}
    items = _remote(server, token, "decisions", **params)["items"]
    lines = [
        f"{_when(i['at'])}  {i['decision']:10}  {i['service']}  {i['method']} {i['path']}  "
        f"{i['caller'] or '-'}  {i['requestId']}  ({i['reason']})"
        for i in items
    ]
    _emit({"items": items}, output, "\n".join(lines) or "no denials recorded")


def _remote(server: str, token: str | None, what: str, **params: str | None) -> dict[str, Any]:
    """Ask the running control plane; errors leave as CLI errors (exit 1, or 3 unreachable)."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        return api.authz(what, **params)
    raise AssertionError("unreachable")  # reporting_errors exits on any error


authz_serve.install(app)
