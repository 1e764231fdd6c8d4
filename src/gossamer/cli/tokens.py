"""Tokens and agents: ``gossamer token create|list|revoke`` (join tokens for hosts, and
``--operator`` tokens for the REST API) and ``gossamer agents list|revoke`` (the host's own
side is ``gossamer agent``)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import pydantic
import typer
from rich.table import Table
from rich.text import Text

from gossamer.cli import render
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors, stderr, stdout
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


class Output(StrEnum):
    text = "text"
    json = "json"


class ListOutput(StrEnum):
    table = "table"
    json = "json"


class RegistryApi(ApiClient):
    """The CLI's client, with the operator calls of the agent protocol."""

    def __enter__(self) -> RegistryApi:
        return self

    def create_token(self, ttl_seconds: int, scope: dict[str, Any]) -> dict[str, Any]:
        return self._dict("POST", "/v1/tokens", json={"ttlSeconds": ttl_seconds, "scope": scope})

    def tokens(self) -> list[dict[str, Any]]:
        return list(self._dict("GET", "/v1/tokens")["items"])

    def create_operator_token(self, name: str | None, read_only: bool) -> dict[str, Any]:
        body = {"name": name, "readOnly": read_only}
        return self._dict("POST", "/v1/operator-tokens", json=body, change=True)

    def operator_tokens(self) -> list[dict[str, Any]]:
        return list(self._dict("GET", "/v1/operator-tokens")["items"])

    def revoke_operator_token(self, name: str) -> dict[str, Any]:
        return self._dict("DELETE", f"/v1/operator-tokens/{name}", change=True)

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


def _when(value: object) -> str:
    if not isinstance(value, str):
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def describe_scope(scope: object) -> str:
    """A token's or agent's scope in one cell: ``reviews, web in default @ 127.0.0.5``."""
    if not isinstance(scope, dict):
        return "any (before scopes)"
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
) -> dict[str, Any]:
    """The scope of a join token from the flags (the control plane checks the values)."""
    if not services and not any_service:
        raise typer.BadParameter(
            "say what the host may serve: --service NAME (repeatable), or --any-service "
            "for a host that may serve any service"
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
        str | None,
        typer.Option("--namespace", "-n", help="the namespace of its services (default: default)"),
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
    operator: OperatorFlag = False,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="with --operator: may read (GET), never change")
    ] = False,
    name: Annotated[
        str | None,
        typer.Option("--name", help="with --operator: the token's name (default: generated)"),
    ] = None,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.text,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Create a single-use join token for a host that may serve only the given services
    (or, with --operator, an API token); prints it once: it is stored only as a hash."""
    if not operator and (read_only or name is not None):
        raise typer.BadParameter("--read-only and --name go with --operator")
    scoped = service or any_service or namespace or any_namespace or address
    if operator and scoped:
        raise typer.BadParameter(
            "--service, --any-service, --namespace, --any-namespace and --address go with "
            "a join token, not --operator"
        )
    if operator:
        _create_operator_token(name, read_only, output, server, token)
        return
    scope = _scope(service or [], any_service, namespace, any_namespace, address or [])
    seconds = parse_ttl(ttl)
    with reporting_errors(), RegistryApi(server, token=token) as api:
        created = api.create_token(seconds, scope)
    if output is Output.json:
        typer.echo(render.to_json(created))
        return
    token = str(created["token"])
    typer.echo(token)
    err = stderr()
    err.print(
        f"single use; expires {_when(created.get('expiresAt'))}; the host may serve "
        f"{describe_scope(created.get('scope'))}. On the host, run:"
    )
    err.print(
        Text(f"  gossamer agent join --server {server} --token {token} --host HOST --state-dir DIR")
    )


def _create_operator_token(
    name: str | None, read_only: bool, output: Output, server: str, token: str | None
) -> None:
    with reporting_errors(), RegistryApi(server, token=token) as api:
        created = api.create_operator_token(name, read_only)
    if output is Output.json:
        typer.echo(render.to_json(created))
        return
    typer.echo(str(created["token"]))
    stderr().print(
        f"{created['kind']} token {created['name']!r} (NGAC user {created['user']}); shown "
        "only now. Use it with: export GOSSAMER_TOKEN=<token>, or --token, or put it in "
        "~/.config/gossamer/token"
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
    with reporting_errors(), RegistryApi(server, token=token) as api:
        revoked = api.revoke_operator_token(name)
    stdout().print(f"revoked {revoked['kind']} token {revoked['name']!r}")


def _list_operator_tokens(output: ListOutput, server: str, token: str | None) -> None:
    with reporting_errors(), RegistryApi(server, token=token) as api:
        items = api.operator_tokens()
    if output is ListOutput.json:
        typer.echo(render.to_json(items))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("NAME", "KIND", "NGAC USER", "CREATED", "REVOKED"):
        table.add_column(column, no_wrap=True)
    for t in items:
        table.add_row(
            str(t["name"]),
            str(t["kind"]),
            str(t["user"]),
            _when(t.get("createdAt")),
            _when(t.get("revokedAt")),
        )
    stdout().print(table)


@token_app.command("list")
def list_tokens(
    operator: OperatorFlag = False,
    output: Annotated[ListOutput, typer.Option("-o", "--output")] = ListOutput.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Every join token (never the secret): unused, used (by which host) or expired; with
    --operator, every operator token: name, kind (operator, read-only), NGAC user."""
    if operator:
        _list_operator_tokens(output, server, token)
        return
    with reporting_errors(), RegistryApi(server, token=token) as api:
        tokens = api.tokens()
    if output is ListOutput.json:
        typer.echo(render.to_json(tokens))
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
    output: Annotated[ListOutput, typer.Option("-o", "--output")] = ListOutput.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Every agent that joined: host, state, when it joined and was last seen, workloads."""
    with reporting_errors(), RegistryApi(server, token=token) as api:
        agents = api.agents()
    if output is ListOutput.json:
        typer.echo(render.to_json(agents))
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
