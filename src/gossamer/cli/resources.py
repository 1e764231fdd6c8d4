"""``apply``, ``get``, ``delete`` and ``validate``: resources from files and the server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gossamer.cli import render
from gossamer.cli.client import CHANGE_TIMEOUT, DEFAULT_SERVER, ApiClient
from gossamer.cli.common import MaxYamlNodes, Server, Token, reporting_errors, stdout
from gossamer.cli.output import Output, OutputOption
from gossamer.cli.yaml_files import expand_paths, load_files
from gossamer.errors import FateUnknownError, GossamerError, ValidationError
from gossamer.model import ModelSnapshot, check_references
from gossamer.model.loader import DEFAULT_MAX_NODES
from gossamer.types import DEFAULT_NAMESPACE

Files = Annotated[
    list[Path] | None,
    typer.Option("-f", "--file", help="a YAML file or directory (repeat -f for several)"),
]
MoreFiles = Annotated[list[Path] | None, typer.Argument(help="more files", show_default=False)]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        min=0.1,
        help="seconds to wait for the control plane's answer (with --wait: plus "
        "--wait-timeout); if none comes, the change's fate is unknown",
    ),
]


def _files(files: list[Path] | None, more: list[Path] | None) -> list[Path]:
    return expand_paths([*(files or []), *(more or [])])


def apply(
    files: Files = None,
    more: MoreFiles = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="return once every affected proxy has ACKed")
    ] = False,
    wait_timeout: Annotated[
        float, typer.Option("--wait-timeout", min=0.1, max=600, help="seconds, with --wait")
    ] = 30.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what would change; store nothing")
    ] = False,
    timeout: Timeout = CHANGE_TIMEOUT,
    max_yaml_nodes: MaxYamlNodes = DEFAULT_MAX_NODES,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Validate and store every resource in FILES at once (nothing is applied on error)."""
    with reporting_errors():
        paths = _files(files, more)
        loaded = load_files(paths, max_nodes=max_yaml_nodes)
        resources = loaded.resources
        manifests = [r.to_manifest() for r in resources]
        with ApiClient(server, token=token) as api:
            try:
                result = api.apply(
                    manifests,
                    loaded.sources,
                    dry_run=dry_run,
                    wait=wait,
                    wait_timeout=wait_timeout,
                    timeout=timeout,
                )
            except FateUnknownError as e:
                files_given = " ".join(f"-f {p}" for p in paths)
                raise FateUnknownError(
                    f"{e}. Check before applying again: `gossamer apply --dry-run "
                    f"{files_given}` lists what is not stored (nothing, if it was), or see "
                    "`gossamer get KIND`; for large applies raise --timeout"
                ) from None
            changes: dict[str, str] = {}
            if dry_run:
                applied = {str(r.key): m for r, m in zip(resources, manifests, strict=True)}
                for key in result["diff"]["updated"]:
                    r = next(r for r in resources if str(r.key) == key)
                    stored = api.get(r.kind, r.metadata.namespace, r.metadata.name)
                    changes[key] = render.manifest_diff(key, stored, applied[key])
        render.print_result(stdout(), result, dry_run=dry_run, changes=changes, waited=wait)


def get(
    kind: Annotated[
        str,
        typer.Argument(help="service(s), workload(s), gateway(s), route(s), mesh(es); any case"),
    ],
    name: Annotated[str | None, typer.Argument(help="NAME or NAMESPACE/NAME")] = None,
    namespace: Annotated[
        str | None,
        typer.Option("-n", "--namespace", help="namespace (default: all; 'default' with NAME)"),
    ] = None,
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Show one resource, or every resource of a kind."""
    with reporting_errors(), ApiClient(server, token=token) as api:
        if name is not None:
            ns, _, bare = name.rpartition("/")
            manifest = api.get(kind, ns or namespace or DEFAULT_NAMESPACE, bare)
            canonical, items = str(manifest.get("kind", kind)), [manifest]
        else:
            canonical, items = api.list_resources(kind, namespace)
        if output is Output.json:
            typer.echo(render.to_json(items[0] if name is not None else items))
        elif output is Output.yaml:
            typer.echo(render.to_yaml_stream(items), nl=False)
        elif not items:
            where = f" in namespace {namespace}" if namespace else ""
            stdout().print(f"no {canonical} resources{where}")
        else:
            if canonical == "Service":
                items = render.with_local_addresses(items, _addresses(api))
            stdout().print(render.resource_table(canonical, items))


def _addresses(api: ApiClient) -> dict[tuple[str, str, str], str]:
    """The addresses apps dial; none if the control plane cannot say (then the table shows
    ``(allocated)``)."""
    try:
        return api.local_addresses()
    except GossamerError:
        return {}


def delete(
    kind: Annotated[
        str | None, typer.Argument(help="the kind (any case, singular or plural)")
    ] = None,
    name: Annotated[str | None, typer.Argument(help="NAME or NAMESPACE/NAME")] = None,
    namespace: Annotated[
        str, typer.Option("-n", "--namespace", help="the namespace of NAME")
    ] = DEFAULT_NAMESPACE,
    files: Files = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="return once every affected proxy has ACKed")
    ] = False,
    timeout: Timeout = CHANGE_TIMEOUT,
    max_yaml_nodes: MaxYamlNodes = DEFAULT_MAX_NODES,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Delete KIND NAME, or every resource in -f FILE (in one transaction)."""
    if files and (kind or name):
        raise typer.BadParameter("give KIND NAME or -f FILE, not both")
    if not files and not (kind and name):
        raise typer.BadParameter("give KIND and NAME (e.g. `delete route cart`), or -f FILE")
    with reporting_errors(), ApiClient(server, token=token) as api:
        try:
            if files:
                loaded = load_files(expand_paths(files), max_nodes=max_yaml_nodes)
                refs = [r.key for r in loaded.resources]
                triples = [(k.kind, k.namespace, k.name) for k in refs]
                result = api.delete_many(triples, wait=wait, timeout=timeout)
            else:
                assert kind is not None and name is not None
                ns, _, bare = name.rpartition("/")
                result = api.delete(kind, ns or namespace, bare, wait=wait, timeout=timeout)
        except FateUnknownError as e:
            raise FateUnknownError(
                f"{e}. See what is still stored with `gossamer get KIND` before deleting again"
            ) from None
        render.print_result(stdout(), result, waited=wait)


def validate(
    files: Files = None, more: MoreFiles = None, max_yaml_nodes: MaxYamlNodes = DEFAULT_MAX_NODES
) -> None:
    """Check FILES without a server: fields, then references among the files themselves."""
    with reporting_errors(changes=False):
        paths = _files(files, more)
        loaded = load_files(paths, max_nodes=max_yaml_nodes)
        errors = check_references(ModelSnapshot().with_changes(puts=loaded.resources))
        if errors:
            raise ValidationError(loaded.naming_files(errors))
        count = len(loaded.resources)
        stdout().print(
            f"valid: {count} resource{'' if count == 1 else 's'} in {len(paths)} "
            f"file{'' if len(paths) == 1 else 's'}"
        )


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(get)
    app.command()(delete)
    app.command()(validate)
