"""``gossamer backup``, ``gossamer restore`` and ``gossamer rollback`` (docs/backup.md).

The passphrase comes from ``--passphrase-file`` or a prompt on the terminal, never from
the command line (where every user of the host could read it in the process list).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from gossamer.backup.archive import MIN_PASSPHRASE, parse
from gossamer.cli import render
from gossamer.cli.client import CHANGE_TIMEOUT, DEFAULT_SERVER, ApiClient
from gossamer.cli.common import Server, Token, reporting_errors, stderr, stdout
from gossamer.cli.output import Output, OutputOption, emit
from gossamer.errors import ConfigError
from gossamer.files import PRIVATE_FILE

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="read the passphrase (its first line) from this file; without it, it is asked "
        "for on the terminal",
    ),
]
Force = Annotated[bool, typer.Option("--force", help="replace what is there")]


def read_passphrase(path: Path | None, *, confirm: bool) -> str:
    """The passphrase from ``path``'s first line, or asked for on the terminal."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"--passphrase-file {path}: cannot read it ({e})") from None
        lines = text.splitlines()
        if not lines or not lines[0]:
            raise ConfigError(f"--passphrase-file {path}: its first line is empty")
        return lines[0]
    if not sys.stdin.isatty():
        raise ConfigError(
            "no terminal to ask for the passphrase on: give --passphrase-file FILE (never the "
            "passphrase itself on the command line)"
        )
    prompt = f"passphrase (at least {MIN_PASSPHRASE} characters)" if confirm else "passphrase"
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm))


def _write_private(path: Path, data: bytes, force: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except FileExistsError:
        raise ConfigError(f"{path} exists: choose another file, or pass --force") from None
    except OSError as e:
        raise ConfigError(f"cannot write {path}: {e.strerror}") from None
    try:
        os.fchmod(fd, PRIVATE_FILE)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class _Client(ApiClient):
    def backup(self, passphrase: str) -> dict[str, Any]:
        body = {"passphrase": passphrase}
        return self._dict("POST", "/v1/backup", json=body, timeout=CHANGE_TIMEOUT)

    def rollback(
        self, revision: int, *, dry_run: bool, expect_digest: str | None = None
    ) -> dict[str, Any]:
        body = {"toRevision": revision, "dryRun": dry_run, "expectDigest": expect_digest}
        return self._dict(
            "POST", "/v1/rollback", json=body, timeout=CHANGE_TIMEOUT, change=not dry_run
        )


def backup(
    file: Annotated[Path, typer.Argument(help="where to write the archive (made 0600)")],
    passphrase_file: PassphraseFile = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite FILE if it exists")] = False,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Save every resource, the NGAC journal and the CA (encrypted with a passphrase) to
    FILE, from the running control plane (an operator token)."""
    with reporting_errors(changes=False):
        passphrase = read_passphrase(passphrase_file, confirm=True)
        api = _Client(server, token=token)
        with api:
            doc = api.backup(passphrase)
        _write_private(file, json.dumps(doc, separators=(",", ":")).encode(), force)
        counts = doc.get("counts") or {}
        total = sum(int(v) for v in counts.values())
        journal = int(counts.get("AccessCommand", 0))
        ca = "the CA (encrypted)" if doc.get("ca") else "no CA"
        stdout().print(
            f"wrote {file}: {total} resources at revision {doc['store']['revision']} "
            f"({journal} NGAC journal entries) and {ca}"
        )


def restore(
    file: Annotated[Path, typer.Argument(help="an archive `gossamer backup` wrote")],
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="the stopped control plane's data directory")
    ] = Path(".gossamer"),
    store: Annotated[
        str | None,
        typer.Option("--store", help="the store, as `gossamer control-plane --store` names it"),
    ] = None,
    passphrase_file: PassphraseFile = None,
    force: Force = False,
) -> None:
    """Restore FILE into an empty store and CA directory, with the control plane stopped;
    then start it with the same --data-dir (and --store)."""
    with reporting_errors():
        try:
            data = file.read_bytes()
        except OSError as e:
            raise ConfigError(f"cannot read {file}: {e.strerror}") from None
        # (here: the store and the models load for this command only)
        from gossamer.backup.restore import restore as restore_archive

        archive = parse(data)
        passphrase = read_passphrase(passphrase_file, confirm=False) if archive.ca else None
        done = asyncio.run(restore_archive(archive, passphrase, data_dir, store, force=force))
        total = sum(done.counts.values())
        journal = done.counts.get("AccessCommand", 0)
        stdout().print(
            f"restored {total} resources ({journal} NGAC journal entries) from revision "
            f"{archive.revision} of {archive.created_at} as revision {done.revision}, and "
            f"{len(done.ca_files)} CA files into {data_dir / 'ca'}"
            + (f"; replaced {done.replaced} resources and files" if done.replaced else "")
        )
        stdout().print(
            f"start it: gossamer control-plane --data-dir {data_dir}"
            + (f" --store {store}" if store else "")
            + " (the backup's operator tokens work again)"
        )


def _show(body: dict[str, Any]) -> None:
    out = stdout()
    created, updated, deleted = body["created"], body["updated"], body["deleted"]
    out.print(
        f"rollback to revision {body['toRevision']} (the store is at revision "
        f"{body['fromRevision']}): {len(created)} to create, {len(updated)} to change, "
        f"{len(deleted)} to delete"
    )

    def name(c: dict[str, Any]) -> str:
        k = c["key"]
        return f"{k['kind']} {k['namespace']}/{k['name']}"

    for c in created:
        out.print(f"  create {name(c)}")
    for c in deleted:
        out.print(f"  delete {name(c)}")
    for c in updated:
        out.print(f"  change {name(c)}")
        diff = render.manifest_diff(name(c), c["now"], c["then"])
        diff = diff.replace(" (stored)", " (now)").replace(
            " (applied)", f" (at {body['toRevision']})"
        )
        out.print(diff.rstrip("\n"), markup=False)
    for s in body["skipped"]:
        k = s["key"]
        out.print(f"  keep {k['kind']} {k['namespace']}/{k['name']}: {s['reason']}")


def rollback(
    to: Annotated[int, typer.Option("--to", min=0, help="the store revision to go back to")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="apply without asking")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the change; apply nothing")
    ] = False,
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Put users' resources back as they were at revision --to, as one new change, after
    showing it. Workloads agents registered, agents, tokens and the NGAC journal stay."""
    api = _Client(server, token=token)
    with reporting_errors(), api:
        plan = api.rollback(to, dry_run=True)
        empty = not (plan["created"] or plan["updated"] or plan["deleted"])
        if dry_run or empty:
            emit(output, plan, lambda: _show(plan))
            if empty and output is Output.table:
                stdout().print("nothing to roll back")
            return
        if output is Output.table:
            _show(plan)
        if not yes:
            if not sys.stdin.isatty():
                raise ConfigError("no terminal to confirm on: pass --yes to apply this rollback")
            if not typer.confirm("apply this rollback?", default=False):
                stderr().print("nothing was changed")
                raise typer.Exit(1)
        done = api.rollback(to, dry_run=False, expect_digest=plan["digest"])
        emit(
            output,
            done,
            lambda: stdout().print(
                f"rolled back to revision {to}: stored as revision {done['revision']}"
            ),
        )


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command()(restore)
    app.command()(rollback)
