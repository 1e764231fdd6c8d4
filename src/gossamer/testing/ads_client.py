"""``AdsClient``: a fake Envoy on an ADS stream, for tests and for simulating many proxies.

The protocol (what Envoy sends, decodes, ACKs and NACKs) is ``ads_protocol.AdsProtocol``;
this module moves its messages over one of two transports:

* ``in_process(proxy, cache, monitor)`` drives ``gossamer.xds.stream.AdsStream`` directly
  through its ``read``/``write`` callables (no sockets): unit tests of the stream;
* ``connect(proxy, address)`` (or ``channel=`` a shared ``grpc.aio`` channel) talks to a
  control plane's xDS port like a real Envoy.

Both are async context managers yielding a running client; ``AdsClient.run`` is there for
callers that own the task themselves (e.g. hundreds of clients in one ``TaskGroup``).
Waiting is event-driven: ``wait_for`` re-checks its predicate after each response.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, Protocol

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2

from gossamer.errors import PollTimeoutError, XdsError
from gossamer.testing.ads_protocol import (
    AdsProtocol,
    Counters,
    Rejection,
    RejectPredicate,
    Request,
    Response,
    TypeView,
    resource_type,
)
from gossamer.testing.ads_resources import Held, eds_name
from gossamer.translate.bootstrap import ads_bootstrap
from gossamer.types import ProxyIdentity
from gossamer.xds.cache import SnapshotCache
from gossamer.xds.monitor import XdsMonitor
from gossamer.xds.resources import ResourceType
from gossamer.xds.stream import AdsStream

_SOTW = "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources"
_DELTA = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
_CLOSE_GRACE = 2.0


def envoy_node(
    proxy: ProxyIdentity, metadata: Mapping[str, str | int | float | bool] | None = None
) -> base_pb2.Node:
    """The node an Envoy started from ``ads_bootstrap(proxy, ...)`` announces."""
    node = ads_bootstrap(proxy, ("127.0.0.1", 1), ("127.0.0.1", 0), metadata=metadata).node
    node.user_agent_name = "gossamer-fake-ads"
    return node


def static_eds(proxy: ProxyIdentity) -> set[str]:
    """The endpoint sets an Envoy started from ``ads_bootstrap(proxy, ...)`` asks for
    before any cluster comes over CDS: its static EDS clusters' (a sidecar's local cluster,
    when ``proxy.service`` is known, as the agent knows it)."""
    bootstrap = ads_bootstrap(proxy, ("127.0.0.1", 1), ("127.0.0.1", 0))
    return {eds_name(c) for c in bootstrap.static_resources.clusters if c.type == c.EDS}


class _Connection(Protocol):
    async def send(self, request: Request) -> None: ...

    async def recv(self) -> tuple[Response, int | None] | None: ...

    async def close(self) -> None:
        """Half-close: the server sees the end of the request stream."""
        ...

    def abort(self) -> None:
        """End the stream now (the server sees a cancelled call)."""
        ...


class AdsClient:
    """One simulated proxy: its protocol state, counters, and a way to wait on them."""

    def __init__(self, proxy: ProxyIdentity, *, delta: bool, node: base_pb2.Node | None = None):
        self.proxy = proxy
        self.delta = delta
        self.protocol = AdsProtocol(
            node or envoy_node(proxy), delta=delta, static_eds=static_eds(proxy)
        )
        #: the exception that ended the stream, if one did
        self.error: BaseException | None = None
        self.closed = False
        self._changed = asyncio.Event()
        self._conn: _Connection | None = None
        #: called with each response once the ACK or NACK for it was sent (e.g. to time
        #: ACKs when simulating many proxies: bench/xds_scale_driver.py)
        self.on_response: Callable[[AdsClient, Response], None] | None = None

    # -- what the proxy holds ------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        return self.protocol.counters

    def view(self, type_or_url: ResourceType | str) -> TypeView:
        return self.protocol.types[resource_type(type_or_url)]

    def resources(self, type_or_url: ResourceType | str) -> dict[str, Held]:
        """name -> (decoded message, version) of one type, as accepted."""
        return self.view(type_or_url).resources

    def versions(self, type_or_url: ResourceType | str) -> dict[str, str]:
        return {n: h.version for n, h in self.resources(type_or_url).items()}

    def reject(
        self,
        type_or_url: ResourceType | str,
        predicate: RejectPredicate = lambda name, msg: True,
        reason: str = "rejected on demand by the test",
    ) -> Rejection:
        """NACK every response holding a resource of that type for which ``predicate``
        is true, until ``lift``."""
        return self.protocol.reject(type_or_url, predicate, reason)

    def lift(self, rejection: Rejection) -> None:
        self.protocol.lift(rejection)

    # -- waiting -------------------------------------------------------------------------

    async def wait_for(
        self,
        predicate: Callable[[AdsClient], object],
        timeout: float = 10.0,  # noqa: ASYNC109 (a deadline, named in the error)
        what: str = "condition",
        *,
        interval: float = 0.05,
    ) -> None:
        """Return once ``predicate(client)`` is true.

        It is checked after every response, and every ``interval`` seconds for what the
        client cannot see change (e.g. the control plane's view of this proxy). Raises
        ``PollTimeoutError`` after ``timeout`` seconds, or ``XdsError`` at once if the stream
        ended first.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate(self):
            if self.closed:
                raise XdsError(
                    f"the ADS stream of {self.proxy.node_id} ended before {what}: {self.error!r}"
                ) from self.error
            rest = deadline - loop.time()
            if rest <= 0:
                raise PollTimeoutError(
                    f"{self.proxy.node_id}: {what} was still not true after {timeout:g} s; "
                    f"holding {self.summary()}"
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(rest, interval)):
                    await changed.wait()

    async def wait_for_resources(
        self,
        type_or_url: ResourceType | str,
        names: Iterable[str],
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        exact: bool = False,
    ) -> None:
        """Until the proxy holds ``names`` of that type (``exact``: and nothing else)."""
        wanted = set(names)
        rtype = resource_type(type_or_url)

        def holds(client: AdsClient) -> bool:
            have = client.resources(rtype).keys()
            return have == wanted if exact else wanted <= have

        await self.wait_for(holds, timeout, f"holding {rtype.short} {sorted(wanted)}")

    def summary(self) -> dict[str, list[str]]:
        return {t.short: sorted(v.resources) for t, v in self.protocol.types.items()}

    # -- running -------------------------------------------------------------------------

    async def run(self, conn: _Connection) -> None:
        """Speak ADS on ``conn`` until either side closes it. Errors end up in ``error``."""
        self._conn = conn
        self.closed, self.error = False, None  # a reconnect (``run`` called again)
        try:
            for req in self.protocol.start():
                await conn.send(req)
            while (got := await conn.recv()) is not None:
                for req in self.protocol.receive(*got):
                    await conn.send(req)
                if self.on_response is not None:
                    self.on_response(self, got[0])
                self._notify()
        except (grpc.aio.AioRpcError, XdsError, ConnectionError) as e:
            self.error = e
        finally:
            self.closed = True
            self._notify()

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()

    def abort(self) -> None:
        """End the stream now, as a proxy losing its connection does (the server sees a
        cancelled call); what the client holds is kept for a reconnect."""
        if self._conn is not None:
            self._conn.abort()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


# -- transports --------------------------------------------------------------------------


class _InProcess:
    """The server's ``AdsStream`` reading from and writing to queues."""

    def __init__(self, stream_of: Callable[[_InProcess], AdsStream]) -> None:
        self._requests: asyncio.Queue[Request | None] = asyncio.Queue()
        self._responses: asyncio.Queue[Response | None] = asyncio.Queue()
        self.stream = stream_of(self)
        self.error: BaseException | None = None

    async def read(self) -> Request | None:
        return await self._requests.get()

    async def write(self, response: Response) -> None:
        self._responses.put_nowait(response)

    async def serve(self) -> None:
        """Run the server's side; an error it raises is what the client sees as the end."""
        try:
            await self.stream.run()
        except XdsError as e:
            self.error = e
        finally:
            self._responses.put_nowait(None)

    async def send(self, request: Request) -> None:
        self._requests.put_nowait(request)

    async def recv(self) -> tuple[Response, int | None] | None:
        response = await self._responses.get()
        if response is None:
            if self.error is not None:
                raise XdsError(f"the server ended the stream: {self.error}") from self.error
            return None
        return response, None

    async def close(self) -> None:
        self._requests.put_nowait(None)

    def abort(self) -> None:
        self._responses.put_nowait(None)


class _Grpc:
    """One bidirectional ADS call on a ``grpc.aio`` channel."""

    def __init__(self, channel: grpc.aio.Channel, delta: bool) -> None:
        self._size = 0
        response_type = (
            discovery_pb2.DeltaDiscoveryResponse if delta else discovery_pb2.DiscoveryResponse
        )

        def decode(data: bytes) -> Any:
            self._size = len(data)
            return response_type.FromString(data)

        method = channel.stream_stream(
            _DELTA if delta else _SOTW,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=decode,
        )
        self._call = method()
        self._closed = False

    async def send(self, request: Request) -> None:
        if self._closed:
            return  # an ACK of a response that crossed our half-close: nobody reads it
        await self._call.write(request)

    async def recv(self) -> tuple[Response, int | None] | None:
        response = await self._call.read()
        if response is grpc.aio.EOF:
            return None
        return response, self._size

    async def close(self) -> None:
        self._closed = True
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await self._call.done_writing()

    def abort(self) -> None:
        self._call.cancel()


@contextlib.asynccontextmanager
async def _running(client: AdsClient, conn: _Connection, *extra: Any) -> AsyncIterator[AdsClient]:
    client.closed = False  # already open to waiters, before the task starts
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(coro) for coro in extra]
            tasks.append(tg.create_task(client.run(conn)))
            try:
                yield client
            finally:
                await conn.close()
                _, pending = await asyncio.wait(tasks, timeout=_CLOSE_GRACE)
                if pending:
                    # the server did not end its side (e.g. it had no snapshot to wake it)
                    conn.abort()
                    for task in pending:
                        task.cancel()
    except BaseExceptionGroup as group:
        raise unwrap(group) from None


def unwrap(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one exception of a TaskGroup's group (e.g. a test's failed assert), else the group."""
    return group.exceptions[0] if len(group.exceptions) == 1 else group


@contextlib.asynccontextmanager
async def in_process(
    proxy: ProxyIdentity,
    cache: SnapshotCache,
    monitor: XdsMonitor,
    *,
    delta: bool = False,
    node: base_pb2.Node | None = None,
    key: str | None = None,
    client: AdsClient | None = None,
) -> AsyncIterator[AdsClient]:
    """A client on a server-side ``AdsStream`` over ``cache``, with no sockets.

    Pass the ``client`` of an ended stream to reconnect it with what it holds."""
    client = client or AdsClient(proxy, delta=delta, node=node)
    conn = _InProcess(
        lambda io: AdsStream(
            key or f"fake-{proxy.node_id}",
            delta=client.delta,
            cache=cache,
            monitor=monitor,
            read=io.read,
            write=io.write,
        )
    )
    async with _running(client, conn, conn.serve()) as running:
        yield running


def tls_credentials(
    trust_bundle_pem: bytes, key_pem: bytes | None = None, chain_pem: bytes | None = None
) -> grpc.ChannelCredentials:
    """mTLS to an xDS server's ``--xds-tls-addr``: the server verified against
    ``trust_bundle_pem`` (and by address), this client's certificate if given."""
    return grpc.ssl_channel_credentials(trust_bundle_pem, key_pem, chain_pem)


def open_channel(
    address: tuple[str, int], credentials: grpc.ChannelCredentials | None = None
) -> grpc.aio.Channel:
    """A channel to an xDS port (over TLS with ``credentials``); share one among many
    clients or give each its own."""
    target = f"{address[0]}:{address[1]}"
    options = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    if credentials is not None:
        return grpc.aio.secure_channel(target, credentials, options=options)
    return grpc.aio.insecure_channel(target, options=options)


@contextlib.asynccontextmanager
async def connect(
    proxy: ProxyIdentity,
    address: tuple[str, int] | None = None,
    *,
    channel: grpc.aio.Channel | None = None,
    delta: bool = False,
    node: base_pb2.Node | None = None,
    client: AdsClient | None = None,
    credentials: grpc.ChannelCredentials | None = None,
) -> AsyncIterator[AdsClient]:
    """A client on a real ADS call to ``address`` (or on a shared ``channel``), over TLS
    with ``credentials`` (``tls_credentials``).

    Pass the ``client`` of an ended stream to reconnect it with what it holds."""
    if (address is None) == (channel is None):
        raise ValueError("connect: give exactly one of address or channel")
    own = open_channel(address, credentials) if address is not None else None
    chan = own or channel
    assert chan is not None
    client = client or AdsClient(proxy, delta=delta, node=node)
    try:
        async with _running(client, _Grpc(chan, client.delta)) as running:
            yield running
    finally:
        if own is not None:
            await own.close()
