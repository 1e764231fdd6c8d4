"""``gossamer agent``: join a control plane, run this host's workloads, show status and env."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from gossamer.agent.bootstrap import parse_host_port
from gossamer.agent.client import RegistryClient
from gossamer.agent.config import AgentConfig, load_config
from gossamer.agent.process import start_time
from gossamer.agent.runner import Agent, AgentOptions, install_signal_handlers
from gossamer.agent.state import Credential, StateDir
from gossamer.cli.common import EXIT_ERROR, reporting_errors, stdout
from gossamer.cli.logs import setup_logging
from gossamer.errors import ConfigError, FieldError, ValidationError
from gossamer.model.base import Metadata

app = typer.Typer(
    help="Make this host a mesh member: join, run its workloads' sidecars, show status.",
    no_args_is_help=True,
)

StateDirOption = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        envvar="GOSSAMER_AGENT_STATE_DIR",
        help="where the agent keeps its credential, ports and status",
    ),
]
DEFAULT_XDS_PORT = 18000


def _run_async(main: Any) -> Any:
    """Run a coroutine with the CLI's error reporting (unreachable control plane: exit 3)."""
    with reporting_errors():
        return asyncio.run(main)


def _default_host() -> str:
    return socket.gethostname().split(".")[0].lower()


def _check_host(host: str) -> str:
    try:
        Metadata(name=host)
    except Exception:
        raise ConfigError(
            f"--host {host!r} is not a valid name: use lowercase letters, "
            "digits and '-' (e.g. vm-12)"
        ) from None
    return host


@app.command()
def join(
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar="GOSSAMER_SERVER",
            help="the control plane's API, e.g. http://cp:7070",
        ),
    ],
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="GOSSAMER_JOIN_TOKEN",
            help="a join token from `gossamer token create`",
        ),
    ],
    state_dir: StateDirOption,
    host: Annotated[
        str | None,
        typer.Option("--host", help="this host's name (default: the machine's host name)"),
    ] = None,
    xds: Annotated[
        str | None,
        typer.Option(
            "--xds",
            help="the control plane's xDS address "
            "HOST:PORT (default: the server's host, port "
            f"{DEFAULT_XDS_PORT})",
        ),
    ] = None,
) -> None:
    """Exchange a single-use join token for this agent's credential (stored 0600)."""

    async def main() -> None:
        name = _check_host(host or _default_host())
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"--server {server!r} is not an http(s) URL: write e.g. http://127.0.0.1:7070"
            )
        xds_address = xds or f"{parts.hostname}:{DEFAULT_XDS_PORT}"
        parse_host_port(xds_address, "--xds")
        async with RegistryClient(server) as api:
            agent_id, credential = await api.join(token, name)
        state = StateDir(state_dir)
        state.save_credential(
            Credential(server.rstrip("/"), agent_id, credential, name, xds_address)
        )
        stdout().print(
            f"joined as agent {agent_id} (host {name}); credential in "
            f"{state_dir / 'credential.json'}"
        )

    _run_async(main())


@app.command()
def run(
    state_dir: StateDirOption,
    file: Annotated[
        Path | None, typer.Option("-f", "--file", help="the workloads file (YAML)")
    ] = None,
    address: Annotated[
        str | None,
        typer.Option("--address", help="where other hosts reach this host, e.g. 127.0.0.3"),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="this host's name (must be the one it joined as)")
    ] = None,
    envoy: Annotated[str | None, typer.Option("--envoy", help="the Envoy binary")] = None,
    xds: Annotated[
        str | None, typer.Option("--xds", help="override the xDS address HOST:PORT given at join")
    ] = None,
    xds_tls: Annotated[
        str | None,
        typer.Option(
            "--xds-tls",
            help="the control plane's mTLS xDS address HOST:PORT (its --xds-tls-addr): "
            "sidecars get config over mTLS with their workload certificates",
        ),
    ] = None,
) -> None:
    """Register this host's workloads and run one Envoy sidecar per workload until stopped.

    SIGTERM or Ctrl-C drains (endpoints marked draining, listeners drained, Envoys
    stopped); SIGHUP exits leaving the Envoys running for the next agent to adopt.
    """

    setup_logging()

    async def main() -> None:
        config = load_config(file) if file is not None else AgentConfig()
        if address is not None:
            _check_address(address)
        agent = Agent(
            AgentOptions(
                state_dir,
                config,
                host=host,
                address=address,
                envoy=envoy,
                xds=parse_host_port(xds, "--xds") if xds else None,
                xds_tls=parse_host_port(xds_tls, "--xds-tls") if xds_tls else None,
            )
        )
        install_signal_handlers(agent)
        await agent.run()

    _run_async(main())


def _check_address(address: str) -> None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ValidationError(
            [FieldError(f"{address!r} is not an IP address: write e.g. 127.0.0.3", "--address")]
        ) from None


@app.command()
def status(
    state_dir: StateDirOption,
    as_json: Annotated[bool, typer.Option("--json", help="print the status as JSON")] = False,
) -> None:
    """What the agent on this state dir is doing: its Envoys, health, control-plane errors."""
    with reporting_errors():
        data = StateDir(state_dir).status()
        if data is None:
            raise ConfigError(
                f"no agent status in {state_dir}; start one with "
                "`gossamer agent run --state-dir ...`"
            )
    alive = _agent_alive(int(data.get("pid", 0)))
    if not alive and data.get("state") in ("starting", "running", "draining"):
        data["state"] = f"not running (it stopped while {data['state']})"
    if as_json:
        stdout().print_json(json.dumps(data))
        return
    out = stdout()
    out.print(
        f"agent {data.get('agent_id')} on host {data.get('host')}: {data.get('state')}"
        f" (pid {data.get('pid')}), control plane {data.get('server')}"
    )
    if data.get("control_plane_error"):
        retry = data.get("control_plane_retry_in")
        out.print(
            f"[red]control plane: {data['control_plane_error']}[/red]"
            + (f" (retrying in {retry} s)" if retry else "")
        )
    if data.get("error"):
        out.print(f"[red]error: {data['error']}[/red]")
    table = Table()
    for col in (
        "workload",
        "service",
        "inbound",
        "health",
        "envoy",
        "pid",
        "admin",
        "restarts",
        "problem",
    ):
        table.add_column(col)
    for key, w in sorted(data.get("workloads", {}).items()):
        envoy = w.get("envoy", {})
        problem = w.get("health_error") or envoy.get("error") or ""
        table.add_row(
            key,
            w.get("service"),
            w.get("inbound"),
            str(w.get("health")),
            envoy.get("state"),
            str(envoy.get("pid") or ""),
            str(envoy.get("admin") or ""),
            str(envoy.get("restarts", 0)),
            problem,
        )
    out.print(table)
    if not alive:
        raise typer.Exit(EXIT_ERROR)


def _agent_alive(pid: int) -> bool:
    return pid > 0 and start_time(pid) is not None


@app.command()
def env(
    state_dir: StateDirOption,
    export: Annotated[
        bool, typer.Option("--export", help="prefix each line with `export ` (for `eval`)")
    ] = False,
) -> None:
    """Each dependency's stable local address, as NAME=VALUE lines (an EnvironmentFile)."""

    async def main() -> dict[str, str]:
        cred = StateDir(state_dir).credential()
        async with RegistryClient(cred.server, cred.agent_id, cred.credential) as api:
            return await api.env()

    variables: dict[str, str] = _run_async(main())
    out = stdout()
    for name, value in sorted(variables.items()):
        out.print(f"{'export ' if export else ''}{name}={value}", markup=False)
