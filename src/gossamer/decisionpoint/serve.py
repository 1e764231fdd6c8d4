"""``gossamer authz serve``: the decision point's process.

Its graph comes from the control plane (``--server``, ``GET /v1/authz/graph`` long-polled
with a read-only operator token; the control plane gives its supervised child a token of
its own) or from a file (``--graph``: a graph document, e.g. saved from that endpoint).
Each new version replaces the policy whole (graph and decision caches) in a worker thread,
then in one assignment: a check never sees half a graph. Until the first version arrives
every check is denied (Envoy fails closed on errors too).

Every decision is reported (``decisionpoint.recorder``): with ``--server`` to the control
plane's audit trail, which needs a decision point's token (``gossamer token create
--decision-point NAME``: it may read the graph and report, nothing else); with ``--graph``
as JSON lines on stdout or in ``--decisions-log``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc

from gossamer.agent.api_poll import follow_document
from gossamer.decisionpoint.decision import DecisionPoint, Policy
from gossamer.decisionpoint.recorder import DecisionBatcher, DecisionQueue, Sink
from gossamer.decisionpoint.service import AuthorizationServicer
from gossamer.decisionpoint.sinks import ControlPlaneSink, LogSink
from gossamer.errors import ConfigError

log = logging.getLogger(__name__)

GRAPH_PATH = "/v1/authz/graph"
#: seconds in-flight checks get to finish at shutdown
STOP_GRACE_S = 1.0
#: seconds the decisions still queued at shutdown get to be reported
FLUSH_S = 3.0
#: threads running checks (the GIL runs one at a time; a few keep the server's queue moving)
WORKERS = 2


@dataclass(frozen=True)
class ServeSettings:
    listen: tuple[str, int]
    graph_file: Path | None = None
    #: the control plane's API, and the token to read the graph with
    server: str | None = None
    token: str | None = None
    ca_file: Path | None = None
    #: with ``graph_file``: where decisions are logged (None: stdout)
    decisions_log: Path | None = None
    #: let several processes listen on the same address (SO_REUSEPORT: the kernel spreads
    #: connections over them); off, a taken port is an error
    reuse_port: bool = False

    def check(self) -> None:
        if (self.graph_file is None) == (self.server is None):
            raise ConfigError(
                "give the graph's source: --server URL (the control plane; with --token) or "
                "--graph FILE, not both"
            )
        if self.server is not None and not self.token:
            raise ConfigError(
                "--server needs --token (or GOSSAMER_TOKEN): a decision point's token "
                "(`gossamer token create --decision-point NAME`)"
            )
        if self.server is not None and self.decisions_log is not None:
            raise ConfigError(
                "--decisions-log goes with --graph: with --server the decisions go to the "
                "control plane's audit trail (`gossamer authz why REQUEST-ID`)"
            )


def load_graph_file(path: Path) -> Policy:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"--graph: cannot read {path}: {e.strerror}") from None
    except ValueError as e:
        raise ConfigError(f"--graph: {path} is not JSON: {e}") from None
    return Policy.of(data, f"--graph {path}")


class _Loader:
    """Builds each new version's policy off the event loop, newest wins."""

    def __init__(self, point: DecisionPoint) -> None:
        self.point = point
        self.pending: dict[str, Any] | None = None
        self.wake = asyncio.Event()

    def take(self, document: dict[str, Any]) -> None:
        self.pending = document
        self.wake.set()

    async def run(self, where: str) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            document, self.pending = self.pending, None
            if document is None:
                continue
            policy = await asyncio.to_thread(Policy.of, document, where)
            self.point.policy = policy
            log.info("graph version %s: %d nodes", policy.version, len(policy.graph))


def _parse(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict) or "version" not in data or "graph" not in data:
        raise ConfigError(f"{where}: expected an object with version, graph and issuers")
    return data


async def serve(
    settings: ServeSettings,
    stop: asyncio.Event,
    on_listening: Callable[[str, int], None] | None = None,
) -> AuthorizationServicer:
    """Serve until ``stop`` is set; returns the servicer (its counts) after shutdown."""
    settings.check()
    point = DecisionPoint()
    if settings.graph_file is not None:
        point.policy = await asyncio.to_thread(load_graph_file, settings.graph_file)
    sink = _sink(settings)
    if isinstance(sink, LogSink):
        await asyncio.to_thread(sink.check)
    queue = DecisionQueue()
    batcher = DecisionBatcher(queue, sink)
    servicer = AuthorizationServicer(point, queue)
    servicer.batcher = batcher
    server, bound, workers = _grpc_server(settings, servicer)
    host = settings.listen[0]
    try:
        if on_listening is not None:
            on_listening(host, bound)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(batcher.run())]
            if settings.server is not None:
                assert settings.token is not None
                loader = _Loader(point)
                tasks.append(tg.create_task(loader.run(f"{settings.server}{GRAPH_PATH}")))
                tasks.append(
                    tg.create_task(
                        follow_document(
                            settings.server,
                            settings.token,
                            GRAPH_PATH,
                            _parse,
                            lambda d: str(d["version"]),
                            loader.take,
                            ca_file=settings.ca_file,
                        )
                    )
                )
            await stop.wait()
            await _stopped(server, STOP_GRACE_S)  # in-flight checks finish (and are queued)
            for t in tasks:
                t.cancel()
        try:
            async with asyncio.timeout(FLUSH_S):
                await batcher.flush()
        except TimeoutError:
            log.warning("%d decisions not reported at shutdown", len(queue))
    finally:
        await _stopped(server, 0)
        workers.shutdown(wait=False)
        if isinstance(sink, ControlPlaneSink):
            await sink.aclose()
    return servicer


def _grpc_server(
    settings: ServeSettings, servicer: AuthorizationServicer
) -> tuple[grpc.Server, int, futures.ThreadPoolExecutor]:
    """The started gRPC server, its port and its workers.

    A synchronous ``grpc.server``, not grpc.aio: for this one unary RPC it costs about two
    thirds of grpc.aio's CPU per call (docs/benchmarks.md, "The decision point's checks per
    second"). Its workers run the checks; this process's event loop keeps the graph's long
    poll, the loader and reporting. What they share is handed over safely: the policy is
    replaced in one assignment and read once per check, the decision queue takes appends
    from any thread, the decider is used by one check at a time.
    """
    workers = futures.ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="authz-check")
    reuse = 1 if settings.reuse_port else 0
    server = grpc.server(workers, options=[("grpc.so_reuseport", reuse)])
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(servicer, server)
    host, port = settings.listen
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(target)
    except RuntimeError:
        bound = 0
    if bound == 0:
        workers.shutdown(wait=False)
        raise ConfigError(f"--listen: cannot listen on {target}; is the port taken?")
    server.start()
    return server, bound, workers


async def _stopped(server: grpc.Server, grace: float) -> None:
    """Stop ``server`` (checks in flight get ``grace`` seconds), waiting off the loop."""
    done = server.stop(grace)
    await asyncio.to_thread(done.wait, grace + 5.0)


def _sink(settings: ServeSettings) -> Sink:
    if settings.server is not None:
        assert settings.token is not None
        return ControlPlaneSink(settings.server, settings.token, settings.ca_file)
    return LogSink(settings.decisions_log)
