"""Per-stream SDS protocol state: versions, nonces, ACK/NACK; state-of-the-world
(``SdsStreamState``, ``StreamSecrets``) and delta (``DeltaSdsState``, ``DeltaSecrets``).

Plain classes, no I/O: the server feeds them requests (``on_request``), asks it what to send
(``plan``) and reports what it sent (``sent``). It is the xDS rules of
``gossamer.xds.state`` cut down to the one resource type SDS has, whose responses need
not carry every resource (like endpoints and routes): a response carries only the secrets
the proxy does not hold yet in the wanted version, and Envoy keeps the others.

Only one response is in flight at a time; the next waits for Envoy's ACK or NACK. A NACKed
content is not sent again unchanged before a back-off timer (0.5 s doubling to 10 s), so a
proxy recovers if the cause was outside (it never is for a good key pair, but a retry is
cheap) without a busy loop.

A response's ``version_info`` lists what the proxy will hold: ``identity=<serial>,
trust-bundle=<digest>`` (names percent-escaped). Envoy repeats it when it reconnects (the
agent restarted), so a secret it still holds in the wanted version is not sent again; a
delta stream says the same in its first request (``initial_resource_versions``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote, unquote

from google.protobuf import any_pb2

RETRY_FIRST = 0.5
RETRY_MAX = 10.0

RequestKind = Literal["initial", "ack", "nack", "subscribe", "stale"]


@dataclass(frozen=True, slots=True)
class SecretResource:
    """One secret as served: its name, a version naming its content, the packed Secret."""

    name: str
    version: str
    resource: any_pb2.Any


@dataclass(frozen=True, slots=True)
class SdsResponse:
    nonce: str
    version_info: str
    resources: tuple[SecretResource, ...]
    #: name -> version the proxy holds once it ACKs this response
    next_held: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Rejection:
    """Envoy's last NACK: what it refused and when the same content may be sent again."""

    version_info: str
    error: str
    attempts: int
    retry_at: float
    content: frozenset[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    kind: RequestKind
    #: the response this request ACKed or NACKed
    answered: SdsResponse | None = None
    rejection: Rejection | None = None


def encode_versions(held: Mapping[str, str]) -> str:
    """``name=version,...`` sorted by name; the inverse of ``decode_versions``."""
    pairs = sorted(held.items())
    return ",".join(f"{quote(n, safe='-_~')}={quote(v, safe='-_~')}" for n, v in pairs)


def decode_versions(text: str) -> dict[str, str]:
    """The held versions a ``version_info`` of ours names; {} for anything else."""
    out: dict[str, str] = {}
    for part in text.split(",") if text else ():
        name, sep, version = part.partition("=")
        if not sep or not name or not version:
            return {}
        out[unquote(name)] = unquote(version)
    return out


@dataclass
class SdsStreamState:
    #: the secret names the proxy asks for (SotW: every request repeats the whole list)
    subscribed: frozenset[str] = frozenset()
    #: name -> version the proxy holds (ACKed, or announced when it reconnected)
    held: dict[str, str] = field(default_factory=dict)
    inflight: SdsResponse | None = None
    rejection: Rejection | None = None
    requests: int = 0
    acks: int = 0
    nacks: int = 0
    _nonce: int = 0
    _last_nonce: str = ""

    def on_request(
        self,
        *,
        names: Iterable[str],
        version_info: str,
        nonce: str,
        error: str | None,
        now: float,
    ) -> RequestOutcome:
        """Record one DiscoveryRequest for secrets."""
        first = self.requests == 0
        self.requests += 1
        if first:
            self._subscribe(names)
            announced = decode_versions(version_info)
            self.held = {n: v for n, v in announced.items() if n in self.subscribed}
            return RequestOutcome("initial")
        if nonce and nonce != self._last_nonce:
            return RequestOutcome("stale")  # answers a response that a newer one replaced
        self._subscribe(names)
        sent = self.inflight
        if sent is None or nonce != sent.nonce:
            return RequestOutcome("subscribe")
        self.inflight = None
        if error is not None:
            attempts = self.rejection.attempts + 1 if self.rejection else 1
            delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (attempts - 1))
            content = frozenset((r.name, r.version) for r in sent.resources)
            self.rejection = Rejection(sent.version_info, error, attempts, now + delay, content)
            self.nacks += 1
            return RequestOutcome("nack", sent, self.rejection)
        self.held = {n: v for n, v in sent.next_held.items() if n in self.subscribed}
        self.rejection = None
        self.acks += 1
        return RequestOutcome("ack", sent)

    def _subscribe(self, names: Iterable[str]) -> None:
        self.subscribed = frozenset(names)
        self.held = {n: v for n, v in self.held.items() if n in self.subscribed}

    def plan(
        self, available: Mapping[str, SecretResource], now: float
    ) -> tuple[tuple[SecretResource, ...] | None, float | None]:
        """The secrets to send now (None: nothing), and when to plan again if a NACKed
        content is waiting for its retry time."""
        if self.inflight is not None or self.requests == 0:
            return None, None
        changed = tuple(
            available[n]
            for n in sorted(self.subscribed)
            if n in available and self.held.get(n) != available[n].version
        )
        if not changed:
            return None, None
        rejected = self.rejection
        content = frozenset((r.name, r.version) for r in changed)
        if rejected is not None and now < rejected.retry_at and content == rejected.content:
            return None, rejected.retry_at
        return changed, None

    def sent(self, resources: tuple[SecretResource, ...]) -> SdsResponse:
        """Record that a response with ``resources`` goes out; returns it with its nonce."""
        self._nonce += 1
        next_held = {**self.held, **{r.name: r.version for r in resources}}
        response = SdsResponse(str(self._nonce), encode_versions(next_held), resources, next_held)
        self.inflight = response
        self._last_nonce = response.nonce
        return response


# -- delta (incremental) SDS --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeltaResponse:
    nonce: str
    #: secrets added or changed
    resources: tuple[SecretResource, ...]
    #: names the proxy held that are no longer available
    removed: tuple[str, ...]
    #: name -> version the proxy holds once it ACKs this response
    next_held: Mapping[str, str]

    @property
    def version_info(self) -> str:
        """What the proxy will hold, as ``SdsResponse.version_info`` (for logs; delta
        ACKs and NACKs carry no version, only the nonce)."""
        return encode_versions(self.next_held)


@dataclass(frozen=True, slots=True)
class DeltaOutcome:
    kind: RequestKind
    answered: DeltaResponse | None = None
    rejection: Rejection | None = None


def _content(
    resources: Iterable[SecretResource], removed: Iterable[str]
) -> frozenset[tuple[str, str]]:
    """What a response carries, to compare with a NACKed one (a removal has version '')."""
    return frozenset([*((r.name, r.version) for r in resources), *((n, "") for n in removed)])


@dataclass
class DeltaSdsState:
    """Per-stream delta SDS state (``DeltaSecrets``), beside ``SdsStreamState``.

    Requests change the subscriptions by difference (``resource_names_subscribe`` /
    ``_unsubscribe``); the first says what the proxy still holds from an earlier stream
    (``initial_resource_versions``), which is not sent again. A response carries the
    subscribed secrets whose version the proxy lacks and, as ``removed_resources``, those
    it holds that are no longer available. ACK and NACK name a response by nonce only; one
    response is in flight at a time, and a NACKed content waits the same back-off as SotW.
    A name subscribed (again) after the first request is sent whatever the proxy held: a
    client subscribes to get the resource.
    """

    subscribed: frozenset[str] = frozenset()
    held: dict[str, str] = field(default_factory=dict)
    inflight: DeltaResponse | None = None
    rejection: Rejection | None = None
    requests: int = 0
    acks: int = 0
    nacks: int = 0
    _nonce: int = 0
    #: names subscribed while a response was in flight: its ACK does not make them held
    _resubscribed: set[str] = field(default_factory=set)

    def on_request(
        self,
        *,
        subscribe: Iterable[str],
        unsubscribe: Iterable[str],
        initial_versions: Mapping[str, str],
        nonce: str,
        error: str | None,
        now: float,
    ) -> DeltaOutcome:
        """Record one DeltaDiscoveryRequest for secrets."""
        first = self.requests == 0
        self.requests += 1
        added, dropped = set(subscribe), set(unsubscribe)
        self.subscribed = (self.subscribed | added) - dropped
        if first:
            self.held = {n: v for n, v in initial_versions.items() if n in self.subscribed}
            return DeltaOutcome("initial")
        fresh = added - dropped
        self.held = {n: v for n, v in self.held.items() if n in self.subscribed and n not in fresh}
        if self.inflight is not None:
            self._resubscribed |= fresh
        if not nonce:
            return DeltaOutcome("subscribe")
        sent = self.inflight
        if sent is None or nonce != sent.nonce:
            return DeltaOutcome("stale")
        self.inflight = None
        if error is not None:
            attempts = self.rejection.attempts + 1 if self.rejection else 1
            delay = min(RETRY_MAX, RETRY_FIRST * 2 ** (attempts - 1))
            content = _content(sent.resources, sent.removed)
            self.rejection = Rejection(sent.version_info, error, attempts, now + delay, content)
            self.nacks += 1
            return DeltaOutcome("nack", sent, self.rejection)
        self.held = {
            n: v
            for n, v in sent.next_held.items()
            if n in self.subscribed and n not in self._resubscribed
        }
        self.rejection = None
        self.acks += 1
        return DeltaOutcome("ack", sent)

    def plan(
        self, available: Mapping[str, SecretResource], now: float
    ) -> tuple[tuple[tuple[SecretResource, ...], tuple[str, ...]] | None, float | None]:
        """The secrets to send and the names to remove now (None: nothing), and when to
        plan again if a NACKed content is waiting for its retry time."""
        if self.inflight is not None or self.requests == 0:
            return None, None
        changed = tuple(
            available[n]
            for n in sorted(self.subscribed)
            if n in available and self.held.get(n) != available[n].version
        )
        removed = tuple(n for n in sorted(self.held) if n not in available)
        if not changed and not removed:
            return None, None
        rejected = self.rejection
        if (
            rejected is not None
            and now < rejected.retry_at
            and _content(changed, removed) == rejected.content
        ):
            return None, rejected.retry_at
        return (changed, removed), None

    def sent(
        self, resources: tuple[SecretResource, ...], removed: tuple[str, ...]
    ) -> DeltaResponse:
        """Record that a response goes out; returns it with its nonce."""
        self._nonce += 1
        next_held = {n: v for n, v in self.held.items() if n not in removed}
        next_held.update((r.name, r.version) for r in resources)
        response = DeltaResponse(str(self._nonce), resources, removed, next_held)
        self.inflight = response
        self._resubscribed = set()
        return response
