"""Tokens and agents: ``gossamer token create|list|revoke`` (join tokens for hosts, and
``--operator`` tokens for the REST API) and ``gossamer agents list|revoke`` (the host's own
side is ``gossamer agent``)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any

import pydantic
import typer
from rich.table import Table
from rich.text import Text

from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors, stderr, stdout
from gossamer.cli.operator_tokens import (
    OperatorTokensApi,
    create_operator_token,
    list_operator_tokens,
    when,
)
from gossamer.cli.output import Output, OutputOption, emit
from gossamer.model.base import Duration

token_app = typer.Typer(
    help="Single-use join tokens that let a host's agent join the mesh, and operator "
    "tokens for the REST API (--operator).",
    no_args_is_help=True,
)
agents_app = typer.Typer(
    help="The agents that joined: list them, revoke one (its endpoints leave the mesh).",
    no_args_is_help=True,
)

_DURATION: pydantic.TypeAdapter[timedelta] = pydantic.TypeAdapter(Duration)


class RegistryApi(ApiClient):
    """The CLI's client, with the operator calls of the agent protocol."""

    def __enter__(self) -> RegistryApi:
        return self

    def create_token(self, ttl_seconds: int, scope: dict[str, Any]) -> dict[str, Any]:
        return self._dict("POST", "/v1/tokens", json={"ttlSeconds": ttl_seconds, "scope": scope})

    def tokens(self) -> list[dict[str, Any]]:
        return list(self._dict("GET", "/v1/tokens")["items"])

    def agents(self) -> list[dict[str, Any]]:
        return list(self._dict("GET", "/v1/agents")["items"])

    def revoke(self, agent_or_host: str, *, wait: bool, wait_timeout: float) -> dict[str, Any]:
        params = {"wait": "true", "timeout": f"{wait_timeout:g}"} if wait else None
        timeout = wait_timeout + 10 if wait else None
        return self._dict(
            "POST", f"/v1/agents/{agent_or_host}/revoke", params=params, timeout=timeout
        )


def parse_ttl(value: str) -> int:
    """``1h``, ``30m``, ``90s`` -> whole seconds (at least 1)."""
    try:
        seconds = _DURATION.validate_python(value).total_seconds()
    except pydantic.ValidationError:
        raise typer.BadParameter(
            f"{value!r} is not a duration: write e.g. '30m', '1h' or '24h'"
        ) from None
    if seconds < 1:
        raise typer.BadParameter(f"{value!r} is too short: a token lives at least 1s")
    return math.ceil(seconds)


def _check_ttl(value: str) -> str:
    parse_ttl(value)
    return value


_when = when


def describe_scope(scope: object) -> str:
    """A token's or agent's scope in one cell: ``reviews, web in default @ 127.0.0.5``."""
    if not isinstance(scope, dict):
        return "any (before scopes)"
    if scope.get("gateway"):
        return f"gateway {scope['gateway']}"
    services = "any service" if scope.get("anyService") else ", ".join(scope.get("services", []))
    where = "any namespace" if scope.get("anyNamespace") else scope.get("namespace") or "default"
    pinned = scope.get("addresses") or []
    return f"{services} in {where}" + (f" @ {', '.join(pinned)}" if pinned else "")


def _scope(
    services: list[str],
    any_service: bool,
    namespace: str | None,
    any_namespace: bool,
    addresses: list[str],
    gateway: str | None = None,
) -> dict[str, Any]:
    """The scope of a join token from the flags (the control plane checks the values)."""
    if gateway is not None:
        others = [
            flag
            for flag, given in (
                ("--service", services),
                ("--any-service", any_service),
                ("--namespace", namespace is not None),
                ("--any-namespace", any_namespace),
                ("--address", addresses),
            )
            if given
        ]
        if others:
            raise typer.BadParameter(
                f"--gateway and {', '.join(others)} do not go together: a gateway's host "
                "serves no services (write its namespace as --gateway NS/NAME)"
            )
        return {"gateway": gateway}
    if not services and not any_service:
        raise typer.BadParameter(
            "say what the host may serve: --service NAME (repeatable), or --any-service "
            "for a host that may serve any service, or --gateway NS/NAME for a gateway's host"
        )
    scope: dict[str, Any] = {"services": services, "anyService": any_service}
    if namespace is not None:
        scope["namespace"] = namespace
    if any_namespace:
        scope["anyNamespace"] = True
    if addresses:
        scope["addresses"] = addresses
    return scope


OperatorFlag = Annotated[
    bool,
    typer.Option("--operator", help="an operator token for the REST API, not a join token"),
]


@token_app.command("create")
def create_token(
    ttl: Annotated[
        str,
        typer.Option(
            "--ttl", callback=_check_ttl, help="how long the token may be used (e.g. 30m, 1h, 24h)"
        ),
    ] = "1h",
    service: Annotated[
        list[str] | None,
        typer.Option(
            "--service",
            help="a service the host may serve (repeatable); a join token needs this or "
            "--any-service",
        ),
    ] = None,
    any_service: Annotated[
        bool, typer.Option("--any-service", help="the host may serve any service")
    ] = False,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            help="a join token: the namespace of its services (default: default); with "
            "--operator: a namespace whose resources the token may read/apply/delete "
            "(repeatable), and nothing else",
        ),
    ] = None,
    any_namespace: Annotated[
        bool, typer.Option("--any-namespace", help="its services may be in any namespace")
    ] = False,
    address: Annotated[
        list[str] | None,
        typer.Option(
            "--address",
            help="pin the host's address or CIDR (repeatable; e.g. 127.0.0.5, 10.0.0.0/24); "
            "without it the host's first registration fixes its address",
        ),
    ] = None,
    gateway: Annotated[
        str | None,
        typer.Option(
            "--gateway",
            help="a token for the host of the Gateway NS/NAME (NAME alone: namespace "
            "default), for `gossamer gateway --token`; no --service with it",
        ),
    ] = None,
    operator: OperatorFlag = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="with --operator: may read (GET), never change")
    ] = False,
    rights: Annotated[
        str | None,
        typer.Option(
            "--rights",
            help="with --operator --namespace: of read,apply,delete (default: all three)",
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="with --operator: the token's name (default: generated)"),
    ] = None,
    decision_point: Annotated[
        str | None,
        typer.Option(
            "--decision-point",
            metavar="NAME",
            help="an API token for `gossamer authz serve` NAME: it may read the NGAC graph "
            "and report decisions, nothing else",
        ),
    ] = None,
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Create a single-use join token for a host that may serve only the given services
    (or run only the given gateway, --gateway; or, with --operator, an API token); prints
    it once: it is stored only as a hash."""
    if decision_point is not None:
        if operator or read_only or name or rights or namespace or service or any_service:
            raise typer.BadParameter(
                "--decision-point NAME is a token of its own: no --operator, --read-only, "
                "--name, --rights, --namespace or --service with it"
            )
        create_operator_token(decision_point, False, None, None, output, server, token, True)
        return
    if not operator and (read_only or name is not None or rights is not None):
        raise typer.BadParameter("--read-only, --name and --rights go with --operator")
    scoped = service or any_service or any_namespace or address or gateway
    if operator and scoped:
        raise typer.BadParameter(
            "--service, --any-service, --any-namespace, --address and --gateway "
            "go with a join token, not --operator"
        )
    if operator:
        granted = [r.strip() for r in rights.split(",")] if rights is not None else None
        create_operator_token(name, read_only, namespace, granted, output, server, token)
        return
    if namespace is not None and len(namespace) > 1:
        raise typer.BadParameter(
            f"a join token's services are in one namespace: give one --namespace, not "
            f"{len(namespace)} (or --any-namespace)"
        )
    one = namespace[0] if namespace else None
    scope = _scope(service or [], any_service, one, any_namespace, address or [], gateway)
    seconds = parse_ttl(ttl)
    with reporting_errors(), RegistryApi(server, token=token) as api:
        created = api.create_token(seconds, scope)
    if output is not Output.table:
        emit(output, created, lambda: None)
        return
    token = str(created["token"])
    typer.echo(token)
    err = stderr()
    err.print(
        f"single use; expires {_when(created.get('expiresAt'))}; the host may serve "
        f"{describe_scope(created.get('scope'))}. On the host, run:"
    )
    granted = created.get("scope")
    if isinstance(granted, dict) and granted.get("gateway"):
        ns, _, gw = str(granted["gateway"]).partition("/")
        err.print(
            Text(
                f"  gossamer gateway --server {server} --name {gw} --namespace {ns} "
                f"--token {token} --state-dir DIR"
            )
        )
        return
    err.print(
        Text(f"  gossamer agent join --server {server} --token {token} --host HOST --state-dir DIR")
    )


@token_app.command("revoke")
def revoke_token(
    name: Annotated[
        str, typer.Argument(help="the operator token's name (`token list --operator`)")
    ],
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Revoke an operator token: it is refused (401) from now on."""
    with reporting_errors(), OperatorTokensApi(server, token=token) as api:
        revoked = api.revoke_operator_token(name)
    stdout().print(f"revoked {revoked['kind']} token {revoked['name']!r}")


@token_app.command("list")
def list_tokens(
    operator: OperatorFlag = False,
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Every join token (never the secret): unused, used (by which host) or expired; with
    --operator, every operator token: name, kind (operator, read-only), NGAC user."""
    if operator:
        list_operator_tokens(output, server, token)
        return
    with reporting_errors(), RegistryApi(server, token=token) as api:
        tokens = api.tokens()
    if output is not Output.table:
        emit(output, tokens, lambda: None)
        return
    if not tokens:
        stdout().print("no join tokens: create one with `gossamer token create`")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "STATE", "EXPIRES", "AGENT", "USED BY", "USED", "MAY SERVE"):
        table.add_column(column, no_wrap=column != "MAY SERVE")
    for t in tokens:
        table.add_row(
            str(t["name"]),
            str(t["state"]),
            _when(t.get("expiresAt")),
            str(t["agentId"]),
            str(t.get("usedBy") or "-"),
            _when(t.get("usedAt")),
            describe_scope(t.get("scope")),
        )
    stdout().print(table)


def _agent_scope(agent: dict[str, Any]) -> str:
    """The agent's scope with its fixed addresses (``@ ?`` before its first registration)."""
    scope = agent.get("scope")
    if not isinstance(scope, dict):
        return describe_scope(scope)
    addresses = agent.get("addresses") or []
    fixed = {**scope, "addresses": addresses or ["?"]}
    return describe_scope(fixed)


@agents_app.command("list")
def list_agents(
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Every agent that joined: host, state, when it joined and was last seen, workloads."""
    with reporting_errors(), RegistryApi(server, token=token) as api:
        agents = api.agents()
    if output is not Output.table:
        emit(output, agents, lambda: None)
        return
    if not agents:
        stdout().print("no agents have joined: create a token with `gossamer token create`")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("AGENT", "HOST", "STATE", "JOINED", "LAST SEEN", "MAY SERVE", "WORKLOADS"):
        table.add_column(column, no_wrap=column not in ("WORKLOADS", "MAY SERVE"))
    for a in agents:
        table.add_row(
            str(a["agentId"]),
            str(a["host"]),
            str(a.get("state") or ("revoked" if a.get("revoked") else "active")),
            _when(a.get("joinedAt")),
            _when(a.get("lastSeen")),
            _agent_scope(a),
            ", ".join(a.get("workloads") or []) or "-",
        )
    stdout().print(table)


@agents_app.command("revoke")
def revoke(
    agent_or_host: Annotated[str, typer.Argument(help="an agent id, or a host name")],
    wait: Annotated[
        bool, typer.Option("--wait", help="return once every affected proxy has ACKed")
    ] = False,
    wait_timeout: Annotated[
        float, typer.Option("--wait-timeout", min=0.1, max=600, help="seconds, with --wait")
    ] = 30.0,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Revoke an agent (or every active agent of a host): its credential stops working and
    its Workloads leave the mesh, in one transaction."""
    with reporting_errors(), RegistryApi(server, token=token) as api:
        body = api.revoke(agent_or_host, wait=wait, wait_timeout=wait_timeout)
    out = stdout()
    for r in body.get("revoked", []):
        deleted = r.get("deleted") or []
        gone = f"deleted {', '.join(deleted)}" if deleted else "no workloads to delete"
        out.print(f"revoked agent {r['agentId']} (host {r['host']}): {gone}")


def register(app: typer.Typer) -> None:
    app.add_typer(token_app, name="token")
    app.add_typer(agents_app, name="agents")
