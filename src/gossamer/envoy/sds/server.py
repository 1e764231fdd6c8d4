"""An SDS server (the agent's, a gateway runner's): ``envoy.service.secret.v3.
SecretDiscoveryService`` on a Unix socket that only this user can open (0600, in a 0700
directory).

Envoy reaches it through the static ``gossamer-sds`` cluster of its bootstrap (HTTP/2 over
a ``pipe`` address). With ``api_config_source: GRPC`` Envoy opens one state-of-the-world
``StreamSecrets`` stream per secret it needs, the node on the first request; the server
tells proxies apart by node id and serves each the secrets of the owner the agent assigned
it (``SecretCache``). ``DeltaSecrets`` serves an Envoy told ``api_type: DELTA_GRPC`` the
same secrets incrementally (and removals); Gossamer's own bootstraps use ``GRPC``. All
protocol decisions are in ``protocol.SdsStreamState`` and ``protocol.DeltaSdsState``.

Per proxy it records what Envoy ACKed (secret name -> version) and its last NACK, for the
agent's status and, later, root rotation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from gossamer.envoy.sds.protocol import (
    DeltaResponse,
    DeltaSdsState,
    RequestKind,
    SdsResponse,
    SdsStreamState,
    SecretResource,
    encode_versions,
)
from gossamer.envoy.sds.secrets import SECRET_TYPE_URL, SecretCache
from gossamer.errors import ConfigError

log = logging.getLogger(__name__)

#: the longest path a Unix socket address holds (``sun_path`` less its NUL)
MAX_SOCKET_PATH = 107
_EOF = object()


@dataclass
class ProxySecrets:
    """What one proxy holds, as it told us: secret name -> ACKed version, last NACK."""

    acked: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    streams: int = 0
    #: of ``streams``, those on ``DeltaSecrets``
    delta_streams: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "acked": dict(sorted(self.acked.items())),
            "error": self.error,
            "streams": self.streams,
        }


class _Servicer(sds_pb2_grpc.SecretDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, server: SdsServer) -> None:
        self.server = server

    async def StreamSecrets(self, request_iterator: Any, context: Any) -> None:
        first = await _first(context)
        if first is not None:
            await self.server.serve_stream(first, context)

    async def DeltaSecrets(self, request_iterator: Any, context: Any) -> None:
        first = await _first(context)
        if first is not None:
            await self.server.serve_stream(first, context, delta=True)

    async def FetchSecrets(self, request: Any, context: Any) -> Any:
        available = self.server.cache.for_node(request.node.id)
        found = [available[n] for n in request.resource_names if n in available]
        return discovery_pb2.DiscoveryResponse(
            version_info=encode_versions({r.name: r.version for r in found}),
            type_url=SECRET_TYPE_URL,
            resources=[r.resource for r in found],
        )


class SdsServer:
    """``await start(path)`` ... ``await stop()``; ``proxies`` holds what each ACKed.

    ``changed`` is called when what a proxy holds changes; ``subscribed`` when the secret
    names Envoys ask for change (``subscriptions()``): a server whose secrets are made on
    demand (the gateway runner reads certificate files named by the secret) learns there
    what to make.
    """

    def __init__(
        self,
        cache: SecretCache,
        *,
        changed: Callable[[], None] = lambda: None,
        subscribed: Callable[[], None] = lambda: None,
    ) -> None:
        self.cache = cache
        self.proxies: dict[str, ProxySecrets] = {}
        self._changed = changed
        self._subscribed = subscribed
        #: the state of each open stream, by id()
        self._streams: dict[int, SdsStreamState | DeltaSdsState] = {}
        self._server: grpc.aio.Server | None = None
        self._warned: set[tuple[str, str]] = set()
        self.path: Path | None = None
        #: more gRPC services for the same socket, added before ``start`` (the agent's
        #: denial log receiver: ``agent.denial_receiver``)
        self.services: list[Callable[[grpc.aio.Server], None]] = []

    async def start(self, path: Path) -> None:
        if not path.is_absolute():
            raise ConfigError(f"the SDS socket path {path} must be absolute")
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ConfigError(
                f"the SDS socket path {path} is longer than {MAX_SOCKET_PATH} bytes, the "
                "limit of a Unix socket address; use a shorter --state-dir"
            )
        _remove_stale(path)
        server = grpc.aio.server()
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(_Servicer(self), server)
        for add in self.services:
            add(server)
        if server.add_insecure_port(f"unix:{path}") == 0:
            raise ConfigError(f"cannot listen for SDS on the Unix socket {path}")
        await server.start()
        os.chmod(path, 0o600)  # (the state dir is 0700 already: no window for others)
        self._server, self.path = server, path
        log.info("SDS: serving secrets on %s", path)

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        if self.path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    def proxy(self, node_id: str) -> ProxySecrets:
        return self.proxies.setdefault(node_id, ProxySecrets())

    def subscriptions(self) -> frozenset[str]:
        """Every secret name an open stream asks for."""
        return frozenset().union(*(s.subscribed for s in self._streams.values()))

    # -- one stream ----------------------------------------------------------------------

    async def serve_stream(self, first: Any, context: Any, *, delta: bool = False) -> None:
        """Serve one stream, state-of-the-world or (``delta``) incremental."""
        node_id = first.node.id
        state: SdsStreamState | DeltaSdsState = DeltaSdsState() if delta else SdsStreamState()
        wake = self.cache.waiter()
        inbox: deque[object] = deque([first])

        async def reader() -> None:
            while (msg := await context.read()) is not grpc.aio.EOF:
                inbox.append(msg)
                wake.set()
            inbox.append(_EOF)
            wake.set()

        record = self.proxy(node_id)
        record.streams += 1
        record.delta_streams += delta
        self._streams[id(state)] = state
        if self.cache.owner_of(node_id) is None:
            self._warn_once(
                node_id,
                "unknown",
                "SDS: %s is not a proxy run here; it gets no secrets",
                node_id,
            )
        try:
            async with asyncio.TaskGroup() as tg:
                task = tg.create_task(reader())
                await self._loop(node_id, state, inbox, wake, context)
                task.cancel()
        finally:
            record.streams -= 1
            record.delta_streams -= delta
            self._streams.pop(id(state), None)
            self.cache.release(wake)
            self._changed()
            self._subscribed()

    async def _loop(
        self,
        node_id: str,
        state: SdsStreamState | DeltaSdsState,
        inbox: deque[object],
        wake: asyncio.Event,
        context: Any,
    ) -> None:
        while True:
            wake.clear()
            while inbox:
                item = inbox.popleft()
                if item is _EOF:
                    return
                if isinstance(state, DeltaSdsState):
                    self._on_delta_request(node_id, state, item)
                else:
                    self._on_request(node_id, state, item)
            message, retry_at = _next(state, self.cache.for_node(node_id), time.time())
            if message is not None:
                await context.write(message)
                continue
            timeout = None if retry_at is None else max(0.0, retry_at - time.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await wake.wait()

    def _on_request(self, node_id: str, state: SdsStreamState, req: Any) -> None:
        if req.type_url and req.type_url != SECRET_TYPE_URL:
            return  # not ours to answer; Envoy never sends it on an SDS stream
        error = req.error_detail.message if req.HasField("error_detail") else None
        before = state.subscribed
        outcome = state.on_request(
            names=list(req.resource_names),
            version_info=req.version_info,
            nonce=req.response_nonce,
            error=error,
            now=time.time(),
        )
        if state.subscribed != before:
            self._subscribed()
        self._note(node_id, state, outcome.kind, outcome.answered, error)

    def _on_delta_request(self, node_id: str, state: DeltaSdsState, req: Any) -> None:
        if req.type_url and req.type_url != SECRET_TYPE_URL:
            return  # not ours to answer
        error = req.error_detail.message if req.HasField("error_detail") else None
        before = state.subscribed
        outcome = state.on_request(
            subscribe=list(req.resource_names_subscribe),
            unsubscribe=list(req.resource_names_unsubscribe),
            initial_versions=dict(req.initial_resource_versions),
            nonce=req.response_nonce,
            error=error,
            now=time.time(),
        )
        if state.subscribed != before:
            self._subscribed()
        self._note(node_id, state, outcome.kind, outcome.answered, error)

    def _note(
        self,
        node_id: str,
        state: SdsStreamState | DeltaSdsState,
        kind: RequestKind,
        answered: SdsResponse | DeltaResponse | None,
        error: str | None,
    ) -> None:
        """Record in the proxy's ``ProxySecrets`` what a request told."""
        record = self.proxy(node_id)
        if kind == "initial":
            # What it holds from before we restarted; a name it asks for but holds nothing
            # of is a new Envoy (or one that lost it): what an earlier one ACKed is void.
            stale = [n for n in state.subscribed if n in record.acked and n not in state.held]
            for name in stale:
                del record.acked[name]
            record.acked.update(state.held)
            if stale or state.held:
                self._changed()
        elif kind == "ack" and answered is not None:
            for name in answered.removed if isinstance(answered, DeltaResponse) else ():
                record.acked.pop(name, None)
            record.acked.update(answered.next_held)
            record.error = None
            log.debug("SDS: %s ACKed %s", node_id, answered.version_info)
            self._changed()
        elif kind == "nack" and answered is not None:
            record.error = error
            self._warn_once(
                node_id,
                answered.version_info,
                "SDS: %s rejected %s: %s",
                node_id,
                answered.version_info,
                error,
            )
            self._changed()

    def _warn_once(self, node_id: str, what: str, message: str, *args: object) -> None:
        if (node_id, what) not in self._warned:
            self._warned.add((node_id, what))
            log.warning(message, *args)


async def _first(context: Any) -> Any | None:
    """A stream's first request (None: the stream ended); a request without a node ends
    the stream with INVALID_ARGUMENT."""
    first = await context.read()
    if first is grpc.aio.EOF:
        return None
    if not first.HasField("node") or not first.node.id:
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            "the first SDS request of a stream must carry the node (its id names the "
            "proxy); generate the bootstrap with gossamer.translate.bootstrap",
        )
    return first


def _next(
    state: SdsStreamState | DeltaSdsState, available: Mapping[str, SecretResource], now: float
) -> tuple[Any | None, float | None]:
    """The message to send now (None: nothing), and when to plan again after a NACK."""
    if isinstance(state, DeltaSdsState):
        planned, retry_at = state.plan(available, now)
        return (None if planned is None else _delta_message(state.sent(*planned))), retry_at
    out, retry_at = state.plan(available, now)
    return (None if out is None else _message(state.sent(out))), retry_at


def _delta_message(response: DeltaResponse) -> discovery_pb2.DeltaDiscoveryResponse:
    return discovery_pb2.DeltaDiscoveryResponse(
        system_version_info=response.version_info,
        type_url=SECRET_TYPE_URL,
        nonce=response.nonce,
        resources=[
            discovery_pb2.Resource(name=r.name, version=r.version, resource=r.resource)
            for r in response.resources
        ],
        removed_resources=list(response.removed),
    )


def _message(response: SdsResponse) -> discovery_pb2.DiscoveryResponse:
    return discovery_pb2.DiscoveryResponse(
        version_info=response.version_info,
        type_url=SECRET_TYPE_URL,
        nonce=response.nonce,
        resources=[r.resource for r in response.resources],
    )


def _remove_stale(path: Path) -> None:
    """Remove a socket a previous run left (the caller holds its directory's lock)."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(
            f"{path} exists and is not a socket; remove it (an SDS server listens there)"
        )
    path.unlink()
