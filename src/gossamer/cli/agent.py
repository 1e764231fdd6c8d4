"""``gossamer agent``: join a control plane, run this host's workloads, show status and env."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gossamer.agent.connect import join_control_plane, open_registry, xds_target
from gossamer.agent.process import start_time
from gossamer.agent.state import StateDir
from gossamer.agent.trust import CA_FILE_ENV
from gossamer.agent.wait_ready import wait_ready
from gossamer.cli.client import DEFAULT_SERVER
from gossamer.cli.common import EXIT_ERROR, reporting_errors, stderr, stdout
from gossamer.cli.logs import setup_logging
from gossamer.cli.output import Output, OutputOption, emit
from gossamer.errors import ConfigError, FieldError, ValidationError
from gossamer.ports import host_ports, parse_host_ports

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
    from gossamer.model.base import Metadata  # (the models: only for the commands using them)

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
    token: Annotated[
        str,
        typer.Option(
            "--token",
            envvar="GOSSAMER_JOIN_TOKEN",
            help="a join token from `gossamer token create` (it names the control plane's "
            "CA: the server is verified before the token is sent)",
        ),
    ],
    state_dir: StateDirOption,
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar="GOSSAMER_SERVER",
            help="the control plane's API, e.g. https://cp:7070 (several replicas "
            "comma-separated: the agent joins through the first and moves on to the next "
            "when one does not answer)",
        ),
    ] = DEFAULT_SERVER,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            "--ca-file",
            envvar=CA_FILE_ENV,
            help="verify the server against these roots (PEM, the control plane's "
            "<data-dir>/ca/root-cert.pem) instead of the token's CA fingerprint",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option("--host", help="this host's name (default: the machine's host name)"),
    ] = None,
    xds: Annotated[
        str | None,
        typer.Option(
            "--xds",
            help="use this plaintext xDS address HOST:PORT (or several, comma-separated: "
            "the control plane's replicas) instead of the ones it advertises at join",
        ),
    ] = None,
    xds_tls: Annotated[
        str | None,
        typer.Option(
            "--xds-tls",
            help="use this mTLS xDS address HOST:PORT (or several, comma-separated: the "
            "control plane's replicas) instead of the one it advertises at join",
        ),
    ] = None,
) -> None:
    """Exchange a single-use join token for this agent's credential (stored 0600), after
    verifying the control plane; keep its trust bundle and xDS addresses with it."""

    async def main() -> None:
        name = _check_host(host or _default_host())
        cred = await join_control_plane(
            server, token, name, ca_file=ca_file, xds=xds, xds_tls=xds_tls
        )
        state = StateDir(state_dir)
        state.save_credential(cred)
        target = xds_target(cred)
        how = "mTLS" if target.tls else "plaintext"
        stdout().print(
            f"joined as agent {cred.agent_id} (host {name}); credential in "
            f"{state_dir / 'credential.json'}; xDS ({how}) {host_ports(target.addresses)}"
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
        str | None,
        typer.Option(
            "--xds",
            help="plaintext xDS at HOST:PORT (several, comma-separated: the control plane's "
            "replicas) instead of the addresses kept at join",
        ),
    ] = None,
    xds_tls: Annotated[
        str | None,
        typer.Option(
            "--xds-tls",
            help="mTLS xDS at HOST:PORT (the control plane's --xds-tls-addr; several, "
            "comma-separated: its replicas) instead of the address kept at join (sidecars "
            "use mTLS by default when it advertised one)",
        ),
    ] = None,
) -> None:
    """Register this host's workloads and run one Envoy sidecar per workload until stopped.

    SIGTERM or Ctrl-C drains (endpoints marked draining, listeners drained, Envoys
    stopped); SIGHUP exits leaving the Envoys running for the next agent to adopt.
    """

    setup_logging()
    # (here, not at the top: every other command starts without the agent's machinery)
    from gossamer.agent.config import AgentConfig, load_config
    from gossamer.agent.runner import Agent, AgentOptions, install_signal_handlers

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
                xds=parse_host_ports(xds, "--xds") if xds else None,
                xds_tls=parse_host_ports(xds_tls, "--xds-tls") if xds_tls else None,
            )
        )
        install_signal_handlers(agent)
        await agent.run()

    _run_async(main())


@app.command("wait-ready")
def wait_ready_command(
    state_dir: StateDirOption,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, max=600, help="seconds to wait at most")
    ] = 60.0,
) -> None:
    """Return once the agent (or gateway) on this state dir is reachable through the mesh:
    its workloads registered and healthy, and ACKed by their sidecars and every proxy that
    routes to them (a gateway: its Envoy ACKed its config). Exits 1 naming what is missing."""
    found = _run_async(wait_ready(state_dir, timeout))
    if not found.ready:
        for line in found.waiting:
            stderr().print(f"not ready after {timeout:g} s: {line}", markup=False)
        raise typer.Exit(EXIT_ERROR)
    stdout().print(f"ready: ACKed by {', '.join(found.acked_by) or 'no proxy'}", markup=False)


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
    output: OutputOption = Output.table,
    as_json: Annotated[
        bool, typer.Option("--json", hidden=True, help="the old -o json (one more release)")
    ] = False,
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
    if as_json or output is not Output.table:
        emit(Output.json if as_json else output, data, lambda: None)
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
    if isinstance(denials := data.get("denials"), dict):  # docs/agent.md, "Denials"
        out.print(
            f"denials reported: {denials.get('sent', 0)} sent, {denials.get('queued', 0)} "
            f"queued, {denials.get('dropped', 0)} dropped, {denials.get('refused', 0)} refused"
            + (f" ({denials['error']})" if denials.get("error") else "")
        )
    table = Table()
    for col in (
        "workload",
        "service",
        "inbound",
        "health",
        "check",
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
            _check_text(w.get("health_check")),
            envoy.get("state"),
            str(envoy.get("pid") or ""),
            str(envoy.get("admin") or ""),
            str(envoy.get("restarts", 0)),
            problem,
        )
    out.print(table)
    if not alive:
        raise typer.Exit(EXIT_ERROR)


def _check_text(check: object) -> str:
    """``http /healthz (policy default/catalog)``: what the agent checks, and whose check
    it is (``file``, ``policy`` NAME or ``default``)."""
    if not isinstance(check, dict):
        return ""
    kind = str(check.get("type", ""))
    what = {"http": f"http {check.get('path')}", "grpc": f"grpc {check.get('grpcService')}"}
    source = check.get("trafficPolicy") and f"policy {check['trafficPolicy']}"
    return f"{what.get(kind, kind).strip()} ({source or check.get('source')})"


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
        async with open_registry(cred) as api:
            return await api.env()

    variables: dict[str, str] = _run_async(main())
    out = stdout()
    for name, value in sorted(variables.items()):
        out.print(f"{'export ' if export else ''}{name}={value}", markup=False)
