"""An SDS server (the agent's, a gateway runner's): ``envoy.service.secret.v3.
SecretDiscoveryService`` on a Unix socket that only this user can open (0600, in a 0700
directory).

Envoy reaches it through the static ``gossamer-sds`` cluster of its bootstrap (HTTP/2 over
a ``pipe`` address). With ``api_config_source: GRPC`` Envoy opens one state-of-the-world
``StreamSecrets`` stream per secret it needs, the node on the first request; the server
tells proxies apart by node id and serves each the secrets of the owner the agent assigned
it (``SecretCache``). ``DeltaSecrets`` is not served (Envoy does not use it for SDS unless
told to; it gets UNIMPLEMENTED). All protocol decisions are in ``protocol.SdsStreamState``.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from gossamer.envoy.sds.protocol import (
    SdsResponse,
    SdsStreamState,
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
        first = await context.read()
        if first is grpc.aio.EOF:
            return
        if not first.HasField("node") or not first.node.id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "the first SDS request of a stream must carry the node (its id names the "
                "proxy); generate the bootstrap with gossamer.translate.bootstrap",
            )
        await self.server.serve_stream(first, context)

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
        self._streams: dict[int, SdsStreamState] = {}
        self._server: grpc.aio.Server | None = None
        self._warned: set[tuple[str, str]] = set()
        self.path: Path | None = None

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

    async def serve_stream(self, first: Any, context: Any) -> None:
        node_id = first.node.id
        state = SdsStreamState()
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
            self._streams.pop(id(state), None)
            self.cache.release(wake)
            self._changed()
            self._subscribed()

    async def _loop(
        self,
        node_id: str,
        state: SdsStreamState,
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
                self._on_request(node_id, state, item)
            out, retry_at = state.plan(self.cache.for_node(node_id), time.time())
            if out is not None:
                response = state.sent(out)
                await context.write(_message(response))
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
        record = self.proxy(node_id)
        if outcome.kind == "initial":
            # What it holds from before we restarted; a name it asks for but holds nothing
            # of is a new Envoy (or one that lost it): what an earlier one ACKed is void.
            stale = [n for n in state.subscribed if n in record.acked and n not in state.held]
            for name in stale:
                del record.acked[name]
            record.acked.update(state.held)
            if stale or state.held:
                self._changed()
        elif outcome.kind == "ack" and outcome.answered is not None:
            record.acked.update(outcome.answered.next_held)
            record.error = None
            log.debug("SDS: %s ACKed %s", node_id, outcome.answered.version_info)
            self._changed()
        elif outcome.kind == "nack" and outcome.answered is not None:
            record.error = error
            self._warn_once(
                node_id,
                outcome.answered.version_info,
                "SDS: %s rejected %s: %s",
                node_id,
                outcome.answered.version_info,
                error,
            )
            self._changed()

    def _warn_once(self, node_id: str, what: str, message: str, *args: object) -> None:
        if (node_id, what) not in self._warned:
            self._warned.add((node_id, what))
            log.warning(message, *args)


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
