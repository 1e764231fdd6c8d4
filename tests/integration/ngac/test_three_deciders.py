"""The three deciders give the same answers (issue 11, "Done when"): on 10,000 random
(caller, method, path[, end user]) requests over random graphs,

1. the compiled RBAC a real Envoy holds (reviews' sidecar, strict mTLS, ``enforce``): its
   route table read back from the config dump (``testing.rbac_eval``), and a random sample
   actually sent through that Envoy with certificates the mesh CA signed for each caller;
2. a real ``gossamer authz serve --graph`` process (the control plane's
   ``GET /v1/authz/graph``) asked over gRPC ``Check`` as Envoy asks it: the peer's URI SAN,
   the method, Envoy's normalised path with its query string, the route's context extension
   ``service``, and for end users the verified token's payload in ``metadata_context``;
3. ``gossamer authz check`` on the policy file: ``authz.requests.decide`` (and
   ``end_users.decide_end_user``) on the engine the CLI builds, and the CLI itself, run as
   a user would (``authz check -f policy.yaml CALLER svc:default/reviews METHOD --path RAW``)
   on a sample.

Raw paths include the variants Envoy normalises; every decider must decide the normalised
path on its deepest covering prefix attribute (the RBAC's action name is that attribute).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import ssl
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import struct_pb2
from tests.integration.agent.mtls_mesh import Mesh, refuses, two_hosts
from typer.testing import CliRunner

from gossamer import ports
from gossamer.authz.end_users import EndUser, claim_attributes, decide_end_user
from gossamer.authz.engine import EngineState, build_state
from gossamer.authz.mesh_names import path_of
from gossamer.authz.pap import JournalEntry, bootstrap_commands
from gossamer.authz.requests import decide, deciding_target
from gossamer.cli.main import app as main_app
from gossamer.cli.yaml_files import load_policies
from gossamer.envoy.process import ManagedProcess
from gossamer.model.authentication import end_user
from gossamer.polling import wait_until
from gossamer.testing.controlplane import api_client, apply_yaml
from gossamer.testing.jwt_tokens import TokenIssuer
from gossamer.testing.rbac_eval import evaluate

from .ngac_mesh import RawHttp, callers, inbound_table
from .three_deciders_cases import (
    CALLERS,
    CLAIMS,
    REVIEWS,
    ROOT,
    STRANGER,
    WIRE_METHODS,
    Request,
    mesh_yaml,
    policy,
    request,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(300),
]

GRAPHS = 2
PER_GRAPH = 5_000
THROUGH_ENVOY = 150
THROUGH_CLI = 25
#: of which run as the installed command (each process takes over a second to start)
AS_PROCESS = 4
GOSSAMER = str(Path(sys.executable).with_name("gossamer"))
#: what Envoy answers with a redirect to the unescaped path
ESCAPED_SLASH = re.compile(r"%(2f|5c)", re.IGNORECASE)
PYTHON = [sys.executable, "-c", "from gossamer.cli.main import run; run()"]


def _cli_state(policy_file: Path) -> EngineState:
    """The engine ``gossamer authz check -f`` builds."""
    boot = JournalEntry(None, "bootstrap", tuple(bootstrap_commands()))
    return build_state(load_policies([policy_file]), [boot])


def _expected(state: EngineState, r: Request) -> tuple[bool, bool]:
    """(the calling service allowed, the whole request allowed) by the engine."""
    g, d = state.graph, state.decider
    service = decide(g, d, r.caller, REVIEWS, r.method, r.raw)
    if r.payload is None:
        return service, service
    user = EndUser(
        end_user(r.payload["iss"], r.payload["sub"]), claim_attributes(r.payload, CLAIMS)
    )
    return service, service and decide_end_user(g, d, user, REVIEWS, r.method, r.raw)


def _check(r: Request) -> external_auth_pb2.CheckRequest:
    """The check Envoy sends for ``r`` (the path as Envoy normalised it, query kept)."""
    req = external_auth_pb2.CheckRequest()
    a = req.attributes
    a.source.principal = r.caller
    a.request.http.method = r.method
    _, q, query = r.raw.partition("?")
    a.request.http.path = path_of(r.raw) + q + query
    a.context_extensions["service"] = "/".join(REVIEWS)
    if r.payload is not None:
        payload = struct_pb2.Struct()
        payload.update(r.payload)
        meta = a.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"]
        meta.fields["payload"].struct_value.CopyFrom(payload)
    return req


async def _decision_point(tmp_path: Path, mesh: Mesh, n: int) -> tuple[ManagedProcess, str]:
    async with api_client(mesh.app) as api:
        answer = await api.get("/v1/authz/graph")
    answer.raise_for_status()
    graph = tmp_path / f"graph-{n}.json"
    graph.write_text(json.dumps(answer.json()))
    address = f"127.0.0.1:{ports.free_port('127.0.0.1')}"
    argv = [*PYTHON, "authz", "serve", "--listen", address, "--graph", str(graph)]
    point = ManagedProcess(argv, log_path=tmp_path / f"authz-{n}.log", name="authz serve")
    await point.start()
    return point, address


async def _ask_all(address: str, asked: list[Request]) -> list[bool]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)

        async def answers() -> bool:
            try:
                await stub.Check(_check(asked[0]), timeout=2)
            except grpc.aio.AioRpcError:
                return False
            return True

        await wait_until(answers, timeout=60, what="authz serve answering checks")
        out: list[bool] = []
        for i in range(0, len(asked), 200):
            got = await asyncio.gather(*(stub.Check(_check(r)) for r in asked[i : i + 200]))
            out += [a.status.code == 0 for a in got]
        return out


async def _through_envoy(mesh: Mesh, conns: dict[str, RawHttp], r: Request) -> bool:
    """Send ``r`` to reviews' sidecar as its caller; follow Envoy's redirect for an escaped
    slash (the redirected request is the one decided). Allowed: the app got the path Envoy
    normalised (its ASGI path is percent-decoded)."""
    status, _ = await conns[r.caller].request(r.method, r.raw)
    if status == 307:
        status, _ = await conns[r.caller].request(r.method, path_of(r.raw))
    assert status in (200, 403), (r, status)
    if status == 200:
        assert mesh.reviews_app.seen[-1].path == unquote(path_of(r.raw)), r
    return bool(status == 200)


def _cli_args(policy_file: Path, r: Request) -> list[str]:
    """``gossamer authz check`` for ``r``, as docs/ngac.md writes it."""
    return ["authz", "check", "-f", str(policy_file), r.caller, ROOT, r.method, "--path", r.raw]


def _cli_in_process(policy_file: Path, r: Request) -> bool:
    """The CLI's own argument parsing and code, in this process."""
    got = CliRunner().invoke(main_app, _cli_args(policy_file, r))
    assert got.exit_code in (0, 1), (r, got.output)
    return got.exit_code == 0


async def _cli_process(policy_file: Path, r: Request, slots: asyncio.Semaphore) -> bool:
    """The installed ``gossamer`` command, as a user runs it."""
    async with slots:
        proc = await asyncio.create_subprocess_exec(
            GOSSAMER, *_cli_args(policy_file, r),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
    assert proc.returncode in (0, 1), (r, out, err)
    assert b"decided on svc:default/reviews" in out, out
    return proc.returncode == 0


async def _answering(mesh: Mesh, ctx: ssl.SSLContext) -> None:
    """Until reviews' sidecar answers a caller with its certificate (the stranger: 403)."""

    async def answered() -> bool:
        try:
            conn = await RawHttp.open(mesh.inbound, ctx)
        except OSError:
            return False
        try:
            return bool((await conn.request("GET", "/probe"))[0] == 403)
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError):
            return False
        finally:
            await conn.close()

    await wait_until(answered, timeout=90, what="reviews' sidecar answering over mTLS")


async def _enforced(mesh: Mesh, prefixes: list[str]) -> Any:
    """reviews' inbound table once it holds a route per prefix (and strict mTLS is on)."""
    wanted = sorted(prefixes)
    tables: list[Any] = []

    async def holds() -> bool:
        table = await inbound_table(mesh)
        (vh,) = table.virtual_hosts
        got = sorted(r.match.path_separated_prefix for r in vh.routes[:-1])
        tables[:] = [table]
        return got == wanted

    await wait_until(holds, timeout=60, what="reviews' sidecar holding the graph's prefixes")
    await wait_until(
        lambda: refuses(f"http://{mesh.inbound}/plain"), timeout=90, what="strict mTLS"
    )
    return tables[0]


async def test_rbac_ext_authz_and_authz_check_agree(tmp_path: Path) -> None:
    rng = random.Random(1111)
    import time

    t0 = time.monotonic()
    T = lambda w: print(w, round(time.monotonic() - t0, 1))  # noqa
    issuer = TokenIssuer("https://idp.shop.example")
    first, prefixes = policy(rng)
    counts = dict.fromkeys(
        ["requests", "allowed", "end_users", "normalised", "through_envoy", "wire_allowed",
         "redirected", "cli"], 0)  # fmt: skip
    async with two_hosts(tmp_path, mesh_yaml(issuer.jwks()) + "\n---\n" + first) as mesh:
        ctx = callers(tmp_path, *CALLERS, STRANGER)
        await _answering(mesh, ctx[STRANGER])
        text = first
        for n in range(GRAPHS):
            if n:
                text, prefixes = policy(rng)
                await apply_yaml(mesh.app, text, wait=True)
            policy_file = tmp_path / f"policy-{n}.yaml"
            policy_file.write_text(text)
            table = await _enforced(mesh, prefixes)
            state = _cli_state(policy_file)
            point, address = await _decision_point(tmp_path, mesh, n)
            try:
                asked = [request(rng) for _ in range(PER_GRAPH)]
                ext = await _ask_all(address, asked)
            finally:
                await asyncio.shield(point.stop(grace=5))
            for r, ext_allowed in zip(asked, ext, strict=True):
                service, whole = _expected(state, r)
                read = evaluate(table, r.caller, r.method, r.raw)
                assert (read.outcome == "allow") == service, (r, read)
                assert read.policy == deciding_target(state.graph, REVIEWS, r.raw), (r, read)
                assert ext_allowed == whole, (r, ext_allowed, whole)
                counts["allowed"] += whole
                counts["end_users"] += r.payload is not None
                counts["normalised"] += path_of(r.raw) != r.raw.split("?", 1)[0]
            counts["requests"] += len(asked)

            # a sample through Envoy (no token: the RBAC decides), and the CLI run as documented
            wire = [r for r in (request(rng, WIRE_METHODS) for _ in range(3 * THROUGH_ENVOY))]
            wire = [Request(r.caller, r.method, r.raw) for r in wire][:THROUGH_ENVOY]
            known = [r for r in wire if r.caller != STRANGER][:THROUGH_CLI]
            slots = asyncio.Semaphore(2)
            cli = asyncio.gather(*(_cli_process(policy_file, r, slots) for r in known[:AS_PROCESS]))
            conns = {c: await RawHttp.open(mesh.inbound, ctx[c]) for c in ctx}
            try:
                for r in wire:
                    allowed = await _through_envoy(mesh, conns, r)
                    assert allowed == _expected(state, r)[0], r
                    counts["wire_allowed"] += allowed
                    counts["redirected"] += bool(ESCAPED_SLASH.search(r.raw.split("?")[0]))
            finally:
                for c in conns.values():
                    await c.close()
            for r, allowed in zip(known, await cli, strict=False):
                assert allowed == _expected(state, r)[0], r
            for r in known:
                assert _cli_in_process(policy_file, r) == _expected(state, r)[0], r
            counts["through_envoy"] += len(wire)
            counts["cli"] += len(known)
    assert counts["requests"] >= 10_000
    # both answers, the variants and end users well represented
    assert 0.1 < counts["allowed"] / counts["requests"] < 0.9, counts
    assert counts["normalised"] > 2_000 and counts["end_users"] > 2_000, counts
    assert 30 < counts["wire_allowed"] < 270 and counts["redirected"] > 10, counts
    print(counts)
