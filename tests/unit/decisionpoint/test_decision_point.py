"""The decision point decides as the engine (``authz check``) does: on random graphs sent
as the API's graph document, 1,200 random (service caller, end user, method, path)
requests, each allowed only if both are; its deciding attribute is the engine's on raw
path variants; then a sample through the real gRPC server (``authz serve --graph``) with
the check requests Envoy sends, each asked twice (the second answer is the kept one)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import grpc
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from google.protobuf import struct_pb2
from rbac_policies_dp import USERS, random_policy

from gossamer.authz.end_users import EndUser, decide_end_user
from gossamer.authz.engine import build_state
from gossamer.authz.requests import decide, deciding_target
from gossamer.authz.rights import HTTP_METHODS
from gossamer.authz.snapshot import dump
from gossamer.decisionpoint.decision import DecisionPoint, Policy
from gossamer.decisionpoint.serve import ServeSettings, serve

SERVICES = [("default", "cart"), ("team-a", "cart")]
PATHS = ["/", "/a", "/a/b", "/a/b/c", "/a/bc", "/b", "/b/x?q=/a", "/c"]
ISSUER = "https://idp.example"
MAPPING = {"groups": {"g0": "ua0", "g1": "ua1", "g2": "ua2"}}


def _document(seed: int) -> tuple[dict[str, object], object]:
    state = build_state([random_policy(random.Random(seed), SERVICES)], [])
    doc = {
        "version": str(seed),
        "graph": json.loads(json.dumps(dump(state.graph))),  # as the API sends it
        "issuers": [{"issuer": ISSUER, "claimsToAttributes": MAPPING}],
    }
    return doc, state


def _request(rng: random.Random) -> dict[str, object]:
    principal = rng.choice(["", *USERS[:4]])
    payload = None
    if not principal or rng.random() < 0.6:
        groups = rng.sample(sorted(MAPPING["groups"]), rng.randint(0, 2))
        payload = {"iss": ISSUER, "sub": rng.choice(["bob", "alice"]), "groups": groups}
    service = rng.choice(SERVICES)
    return {
        "service": f"{service[0]}/{service[1]}",
        "method": rng.choice(HTTP_METHODS),
        "path": rng.choice(PATHS),
        "principal": principal,
        "payload": payload,
    }


def _expected(state: object, r: dict[str, object]) -> bool:
    g, d = state.graph, state.decider  # type: ignore[attr-defined]
    ns, name = str(r["service"]).split("/")
    ok = True
    if r["principal"]:
        ok &= decide(g, d, str(r["principal"]), (ns, name), str(r["method"]), str(r["path"]))
    payload = r["payload"]
    if isinstance(payload, dict):
        attrs = tuple(MAPPING["groups"][x] for x in payload["groups"])
        user = EndUser(f"jwt:{ISSUER}#{payload['sub']}", attrs)
        ok &= decide_end_user(g, d, user, (ns, name), str(r["method"]), str(r["path"]))
    return ok


def test_the_decision_point_decides_as_the_engine() -> None:
    rng = random.Random(2024)
    decided = allowed = 0
    for seed in range(12):
        doc, state = _document(seed)
        point = DecisionPoint(Policy.of(doc, "test"))
        for _ in range(100):
            r = _request(rng)
            verdict = point.decide(**r)  # type: ignore[arg-type]
            assert verdict.allowed == _expected(state, r), (seed, r, verdict)
            assert verdict.allowed or verdict.reason
            decided += 1
            allowed += verdict.allowed
    assert decided == 1200 and 0.05 < allowed / decided < 0.9


RAW_PATHS = [
    *PATHS, "", "/", "//", "/a/", "/a//b", "/a/./b", "/a/../b", "/%61/b", "/a%2Fb", "/a/b#c",
    "a/b", "/a/b/c/d/e", "/a?", "/a/b/", "/A", "/a-b", "/a/b%2F..%2Fc",
]  # fmt: skip


def test_the_deciding_attribute_is_the_engines() -> None:
    rng = random.Random(7)
    for seed in range(12):
        doc, state = _document(seed)
        policy = Policy.of(doc, "test")
        for _ in range(3):  # the second and third time from what the policy remembers
            for service in [*SERVICES, ("default", "absent")]:
                for path in [*RAW_PATHS, rng.choice(PATHS) + rng.choice(PATHS)]:
                    expected = deciding_target(state.graph, service, path)  # type: ignore[attr-defined]
                    assert policy.target(service, path) == expected, (seed, service, path)


def _check_request(r: dict[str, object]) -> external_auth_pb2.CheckRequest:
    req = external_auth_pb2.CheckRequest()
    a = req.attributes
    a.source.principal = str(r["principal"])
    a.request.http.method = str(r["method"])
    a.request.http.path = str(r["path"])
    a.context_extensions["service"] = str(r["service"])
    if r["payload"] is not None:
        payload = struct_pb2.Struct()
        payload.update(r["payload"])  # type: ignore[arg-type]
        meta = a.metadata_context.filter_metadata["envoy.filters.http.jwt_authn"]
        meta.fields["payload"].struct_value.CopyFrom(payload)
    return req


def test_authz_serve_answers_checks_as_the_engine(tmp_path: Path) -> None:
    doc, state = _document(3)
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(doc))

    async def main() -> int:
        stop = asyncio.Event()
        bound: list[int] = []
        listening = asyncio.Event()

        def on_listening(host: str, port: int) -> None:
            bound.append(port)
            listening.set()

        settings = ServeSettings(listen=("127.0.0.1", 0), graph_file=path)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(serve(settings, stop, on_listening))
            async with asyncio.timeout(10):
                await listening.wait()
            rng = random.Random(5)
            denied = 0
            async with grpc.aio.insecure_channel(f"127.0.0.1:{bound[0]}") as channel:
                stub = external_auth_pb2_grpc.AuthorizationStub(channel)
                asked = [_request(rng) for _ in range(200)]
                for r in asked + asked:
                    answer = await stub.Check(_check_request(r))
                    assert (answer.status.code == 0) == _expected(state, r), r
                    if answer.status.code:
                        denied += 1
                        assert answer.denied_response.status.code == 403
                        assert "may not" in answer.denied_response.body
            stop.set()
        return denied

    assert 20 < asyncio.run(main()) < 380
