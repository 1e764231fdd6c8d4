"""``gossamer ca status``: the mesh CA's roots and intermediates, the earliest-expiring
workload certificate, warnings ahead of expiry, the root rotation and what each proxy's
Envoy ACKed over SDS; ``gossamer ca rotate``: a root rotation, followed to its end
(docs/security.md, "The CA")."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from gossamer.ca.trust import certificates, fingerprints, pem_of, token_fingerprint
from gossamer.cli.client import DEFAULT_SERVER, ApiClient
from gossamer.cli.common import EXIT_ERROR, Server, Token, reporting_errors, stderr, stdout
from gossamer.cli.output import Output, OutputOption, emit

#: warn when a CA certificate expires sooner than this
WARN_BEFORE = timedelta(days=30)

app = typer.Typer(help="The mesh's certificate authority.", no_args_is_help=True)


class CaApi(ApiClient):
    def __enter__(self) -> CaApi:
        return self

    def status(self) -> dict[str, Any]:
        return self._dict("GET", "/v1/ca")

    def rotate(self) -> dict[str, Any]:
        return self._dict("POST", "/v1/ca/rotation", json={}, change=True)


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
    lines += _workload_warning(body.get("earliestWorkload"), now)
    return lines, expired


def _workload_warning(cert: dict[str, Any] | None, now: datetime) -> list[str]:
    """A warning when the earliest-expiring workload certificate is past three quarters of
    its life: its host renews at half-life, so it is failing to (is it up?)."""
    if not cert or not cert.get("issuedAt"):
        return []
    issued = datetime.fromisoformat(str(cert["issuedAt"]))
    ends = datetime.fromisoformat(str(cert["notAfter"]))
    if now - issued < (ends - issued) * 0.75:
        return []
    left = max(0, int((ends - now).total_seconds()))
    return [
        f"warning: workload certificate {cert['spiffeId']} (serial {cert['serial']}, held by "
        f"{cert['holder']}) expires in {left} s and was not renewed at half its life: is "
        "its host up and reaching the control plane?"
    ]


@app.command("status")
def status(
    output: OutputOption = Output.table,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Each root and intermediate: subject, serial and expiry; warns within 30 days of
    expiry (exit 1 once one has expired)."""
    with reporting_errors(), CaApi(server, token=token) as api:
        body = api.status()
    emit(output, body, lambda: _table(body))
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
    earliest = body.get("earliestWorkload")
    if earliest:
        ends = datetime.fromisoformat(str(earliest["notAfter"]))
        out.print(
            f"earliest-expiring workload certificate: {earliest['spiffeId']} serial "
            f"{earliest['serial']} (held by {earliest['holder']}), not after "
            f"{ends:%Y-%m-%d %H:%M:%S %Z}".rstrip()
        )
    else:
        out.print("no workload certificate issued since the control plane started")
    out.print(rotation_line(body))
    for line in (body.get("rotation") or {}).get("waiting", []):
        out.print(f"  waiting: {line}")
    _proxies(body)


def rotation_line(body: dict[str, Any]) -> str:
    rotation = body.get("rotation")
    if not rotation:
        return "root rotation: none so far"
    phase = str(rotation["phase"])
    if phase == "done":
        return f"root rotation: done at {rotation['since']} (new root {rotation['newRoot'][:16]})"
    return f"root rotation: phase {phase} ({PHASES.get(phase, '')}), since {rotation['since']}"


#: what each phase of a rotation does
PHASES = {
    "trusting": "the new root is trusted beside the old one; nothing is issued from it yet",
    "issuing": "certificates come from the new root; hosts renew",
    "retiring": "the old root is out of the trust bundle; proxies pick that up",
    "done": "the old root is retired",
}


def _proxies(body: dict[str, Any]) -> None:
    proxies = body.get("proxies", [])
    if not proxies:
        return
    roots = {str(r["fingerprintSha256"]): str(r["subject"]) for r in body.get("roots", [])}
    table = Table(box=None, pad_edge=False)
    for column in ("PROXY", "CERTIFICATE (SDS ACKED)", "FROM ROOT", "TRUST BUNDLE", "CURRENT"):
        table.add_column(column)
    for p in proxies:
        root = p.get("identityRoot")
        table.add_row(
            str(p["nodeId"]),
            str(p.get("identity") or "-"),
            roots.get(str(root), str(root)[:16] + " (retired)") if root else "?",
            str(p.get("trustBundle") or "-"),
            "yes" if p.get("trustBundleCurrent") else "no",
        )
    stdout().print(table)


@app.command("rotate")
def rotate(
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="follow it to the end (default)")
    ] = True,
    timeout: Annotated[
        float, typer.Option("--timeout", help="seconds to follow it before giving up")
    ] = 3600.0,
    server: Server = DEFAULT_SERVER,
    token: Token = None,
) -> None:
    """Rotate the CA's root with no outage: trust a new root beside the old one, move every
    host to certificates from it once every proxy trusts it, then retire the old root.
    Prints each phase and what it waits on."""
    out = stdout()
    with reporting_errors(), CaApi(server, token=token) as api:
        body = api.rotate()
        # the new root, learnt over this verified connection: the follow-up looks trust
        # it, since the API's certificate moves to it mid-way (a token names the old one)
        roots = api.verified_trust_bundle() if api.verifies else None
        secret = api.secret
        rotation = body.get("rotation") or {}
        out.print(
            f"root rotation started: new root {str(rotation.get('newRoot', ''))[:16]} is "
            "trusted beside the old one"
        )
    if not wait:
        out.print("follow it with `gossamer ca status`; it finishes on its own")
        out.print(TOKENS_AFTER.format(pin="<new root's fingerprint>"))
        return
    with reporting_errors():
        roots = _follow(server, token, timeout, roots)
    if roots is not None:
        _token_advice(secret, roots)


#: what tokens made before a rotation need (docs/security.md, "Rotating the root")
TOKENS_AFTER = (
    "tokens made before the rotation name the old root: the control plane re-pins "
    "<data-dir>/admin.token to the new one (export GOSSAMER_TOKEN=$(cat "
    "<data-dir>/admin.token) again); another operator token keeps its secret: write it as "
    "gsm1.{pin}.<secret> or pass --ca-file <data-dir>/ca/root-cert.pem; an unused join "
    "token: create a new one (`gossamer token create`)"
)


def _token_advice(secret: str | None, roots: bytes) -> None:
    """After the rotation: what a token naming a retired root needs, with the new root's
    fingerprint (learnt over verified connections, so safe to re-pin to)."""
    bundle = fingerprints(roots)
    pin = token_fingerprint(secret) if secret else None
    if pin is not None and pin in bundle:
        return
    current = bundle[-1] if bundle else "<new root's fingerprint>"
    if pin is not None:
        stdout().print(f"your token names the retired root {pin[:16]}...")
    stdout().print(TOKENS_AFTER.format(pin=current))


def _follow(server: str, token: str | None, timeout: float, roots: bytes | None) -> bytes | None:
    """Print each phase and what it waits on until done. Each look is a new connection
    verified against ``roots`` (learnt over verified connections, the new root among them,
    since the API's certificate moves to it meanwhile), or anew from the token or CA
    file when None. Returns the roots the server trusts at the end (None: not learnt)."""
    out = stdout()
    deadline = time.monotonic() + timeout
    shown: tuple[str, tuple[str, ...]] | None = None
    trusted: bytes | None = None
    while True:  # bounded by the deadline
        with CaApi(server, token=token, roots=roots) as api:
            body = api.status()
            if roots is not None:
                trusted = api.verified_trust_bundle()
                # every root seen over a verified connection stays trusted by this command
                both = dict.fromkeys([*certificates(roots), *certificates(trusted)])
                roots = pem_of(list(both))
        rotation = body.get("rotation") or {}
        phase = str(rotation.get("phase", ""))
        now = (phase, tuple(str(w) for w in rotation.get("waiting", [])))
        if now != shown:
            if shown is None or now[0] != shown[0]:
                out.print(f"phase {phase}: {PHASES.get(phase, '')}")
            for line in now[1]:
                out.print(f"  {line}")
            shown = now
        if phase == "done":
            out.print("root rotation done: every proxy trusts only the new root")
            return trusted
        if time.monotonic() >= deadline:
            stderr().print(
                f"error: the rotation is still in phase {phase} after {timeout:g} s; it goes "
                "on by itself: follow it with `gossamer ca status`"
            )
            raise typer.Exit(EXIT_ERROR)
        time.sleep(1.0)
