"""Schemathesis against the control plane's REST API: does any request make it fail (5xx)?

Run: ``.venv/bin/python bench/fuzz_api.py [--examples 50] [--seed 1]``.

``gossamer control-plane`` runs as its own process, as an operator starts it (HTTPS API
with its mesh CA, telemetry and the decision point as its children), with a small mesh
applied (``examples/mesh.yaml``) so reads find resources. Schemathesis reads its OpenAPI
document (``/openapi.json``) and, for every operation, sends ``--examples`` requests
generated from the schema (valid ones) and as many that break it (invalid types, missing
fields, out-of-range values), each with the first operator token (``admin.token``), so
they reach the handlers rather than stopping at a 401; the agent protocol's operations
(``/v1/agents/{agent_id}/...``) again as an agent that joined with a join token, its id in
the path. Nothing is sent that would revoke the operator token
(``DELETE /v1/operator-tokens/admin``), and no request asks the server to wait longer
than ``--max-wait`` seconds (a long poll's ``timeout``, an apply's ``waitTimeout``).

A defect is an answer of 500 or more (the server failed rather than refused), a request
that got no answer, a part of the OpenAPI document schemathesis cannot read, or a control
plane that is not ready (``/readyz``) at the end. Each
defect prints its operation, status, the start of its body and a ``curl`` line that
repeats it. The last line is ``FUZZ_API operations=N requests=N server_errors=N
no_answer=N schema_errors=N alive=0|1 defects=N``; the exit status is 1 when defects > 0.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import hypothesis.errors
import requests
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.core.result import Err

from gossamer.ports import free_port
from gossamer.server.children import gossamer_program

ROOT = Path(__file__).resolve().parents[1]
CLI = gossamer_program()  # (the installed ``gossamer``, as an operator runs it)


@dataclass
class Findings:
    requests: int = 0
    no_answer: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    #: parts of the OpenAPI document schemathesis could not read
    schema_errors: list[str] = field(default_factory=list)
    #: (operation, status, start of the body, curl line)
    errors: list[tuple[str, int, str, str]] = field(default_factory=list)


@contextlib.contextmanager
def control_plane(data: Path) -> Iterator[str]:
    """A control plane on ``data``; its API's URL once ready. Stopped (SIGTERM) on exit."""
    api = free_port("127.0.0.1")
    argv = [*CLI, "control-plane", "--data-dir", str(data), "--api-addr", f"127.0.0.1:{api}"]
    argv += ["--xds-addr", f"127.0.0.1:{free_port('127.0.0.1')}"]
    argv += ["--xds-tls-addr", "127.0.0.1:0"]
    log = (data.parent / "control-plane.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"https://127.0.0.1:{api}"
    try:
        deadline = time.monotonic() + 60
        while not ready(url, data):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the control plane did not start; see {log.name}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def ready(url: str, data: Path) -> bool:
    bundle = data / "ca" / "root-cert.pem"
    if not bundle.exists():
        return False
    try:
        return requests.get(f"{url}/readyz", verify=str(bundle), timeout=5).status_code == 200
    except requests.RequestException:
        return False


def session_for(data: Path) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides the mesh CA below
    session.verify = str(data / "ca" / "root-cert.pem")
    token = (data / "admin.token").read_text().strip()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def children_answer(url: str, session: requests.Session) -> None:
    """Wait until the telemetry service (a child the control plane starts after it is
    ready) answers through the API: before, its routes answer 503 telemetry_unavailable."""
    deadline = time.monotonic() + 60
    while session.get(f"{url}/v1/ingestion", timeout=30).status_code != 200:
        if time.monotonic() > deadline:
            raise SystemExit("the telemetry service did not answer within 60 s")
        time.sleep(0.2)


def apply_examples(url: str, session: requests.Session) -> None:
    text = (ROOT / "examples" / "mesh.yaml").read_text()
    manifests = [m for m in yaml.safe_load_all(text) if m]
    r = session.post(f"{url}/v1/apply", json={"manifests": manifests}, timeout=60)
    if r.status_code != 200:
        raise SystemExit(f"could not apply examples/mesh.yaml: {r.status_code} {r.text[:500]}")


def join_agent(url: str, session: requests.Session) -> tuple[str, str]:
    """An agent joined with a fresh join token: ``(agent id, its credential)``, so the agent
    protocol's handlers are reached too (an operator token is no agent's credential)."""
    scope = {"anyService": True}
    r = session.post(f"{url}/v1/tokens", json={"scope": scope}, timeout=30)
    if r.status_code != 200:
        raise SystemExit(f"could not create a join token: {r.status_code} {r.text[:500]}")
    joined = session.post(
        f"{url}/v1/agents/join", json={"token": r.json()["token"], "host": "fuzz-host"}, timeout=30
    )
    if joined.status_code != 200:
        raise SystemExit(f"could not join: {joined.status_code} {joined.text[:500]}")
    return joined.json()["agentId"], joined.json()["credential"]


def short_waits(case: Any, max_wait: float) -> Any:
    """``case`` asking the server to wait at most ``max_wait`` seconds (also when it left
    a long poll's ``timeout`` out: its default is 30 to 60 s). The API allows up to 600 s;
    waiting is the answer there, not a failure."""
    params = case.operation.definition.raw.get("parameters", [])
    if any(p.get("name") == "timeout" and p.get("in") == "query" for p in params):
        if case.query is None:
            case.query = {}
        if isinstance(case.query, dict):
            case.query.setdefault("timeout", max_wait)
    for where, key in ((case.query, "timeout"), (case.body, "waitTimeout")):
        if isinstance(where, dict) and isinstance(where.get(key), int | float):
            where[key] = min(where[key], max_wait)
    return case


def spares_the_fuzzers_token(case: Any) -> bool:
    return not (
        case.operation.path == "/v1/operator-tokens/{name}"
        and (case.path_parameters or {}).get("name") == "admin"
    )


def fuzz(operation: Any, mode: GenerationMode, args: argparse.Namespace, **ctx: Any) -> None:
    """``args.examples`` requests of ``mode`` to ``operation``; with ``ctx["agent"]`` (its
    id and credential), as that agent: its id in the path, its credential sent."""
    url, session, found = ctx["url"], ctx["session"], ctx["found"]
    agent: tuple[str, str] | None = ctx.get("agent")
    fixed: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if agent is not None:
        fixed["path_parameters"] = {"agent_id": agent[0]}
        headers["Authorization"] = f"Bearer {agent[1]}"
    strategy = operation.as_strategy(generation_mode=mode, **fixed)

    @hypothesis.settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.seed(args.seed)
    @hypothesis.given(
        strategy.filter(spares_the_fuzzers_token).map(lambda c: short_waits(c, args.max_wait))
    )
    def one(case: Any) -> None:
        found.requests += 1
        try:
            response = case.call(
                base_url=url, session=session, headers=headers, verify=session.verify, timeout=30
            )
        except requests.RequestException as e:
            found.no_answer += 1
            found.errors.append((operation.label, 0, f"no answer: {e}", case.as_curl_command()))
            return
        found.statuses[response.status_code] += 1
        found.by_operation.setdefault(operation.label, Counter())[response.status_code] += 1
        if response.status_code >= 500:
            curl = case.as_curl_command(headers={"Authorization": "Bearer $TOKEN"}, verify=False)
            found.errors.append((operation.label, response.status_code, response.text[:300], curl))

    # (Unsatisfiable: e.g. no invalid value for a path's one string: nothing to send)
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        one()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=50, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--max-wait", type=float, default=3.0, help="s a request may ask the server to wait"
    )
    parser.add_argument("--only", default="", help="operations whose label contains this")
    args = parser.parse_args(argv)
    started = time.monotonic()
    found = Findings()
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as tmp:
        data = Path(tmp) / "cp"
        with control_plane(data) as url:
            session = session_for(data)
            children_answer(url, session)
            apply_examples(url, session)
            raw = session.get(f"{url}/openapi.json", timeout=30).json()
            schema = schemathesis.openapi.from_dict(raw)
            operations = []
            for result in schema.get_all_operations():
                if isinstance(result, Err):  # the document itself is wrong here
                    found.schema_errors.append(str(result.err()))
                elif args.only in result.ok().label:
                    operations.append(result.ok())
            agent = join_agent(url, session)
            runs: list[tuple[Any, GenerationMode, tuple[str, str] | None]] = [
                (op, mode, None) for op in operations for mode in GenerationMode
            ]
            runs += [
                (op, mode, agent)
                for op in operations
                if "{agent_id}" in op.path
                for mode in GenerationMode
            ]
            for op, mode, as_agent in runs:
                before = found.requests
                fuzz(op, mode, args, url=url, session=session, found=found, agent=as_agent)
                sent = found.requests - before
                seen = found.by_operation.get(op.label, Counter())
                answers = " ".join(f"{s}:{n}" for s, n in sorted(seen.items()))
                who = "agent" if as_agent else "operator"
                print(f"{op.label:<52} {mode.value:<8} {who:<8} {sent:>4} requests  {answers}")
            alive = ready(url, data)
    for error in found.schema_errors:
        print(f"DEFECT the OpenAPI document: {error}")
    for label, status, body, curl in found.errors:
        print(f"DEFECT {label}: {status or 'no answer'}: {body!r}\n  {curl}")
    statuses = " ".join(f"{s}:{n}" for s, n in sorted(found.statuses.items()))
    print(f"statuses {statuses}")
    print(f"{time.monotonic() - started:.0f} s")
    server_errors = sum(n for s, n in found.statuses.items() if s >= 500)
    defects = server_errors + found.no_answer + len(found.schema_errors) + (0 if alive else 1)
    print(
        f"FUZZ_API operations={len(operations)} requests={found.requests} "
        f"server_errors={server_errors} no_answer={found.no_answer} "
        f"schema_errors={len(found.schema_errors)} alive={int(alive)} defects={defects}"
    )
    return 1 if defects else 0


if __name__ == "__main__":
    sys.exit(main())
