"""Per-stream SDS protocol state (state-of-the-world): versions, nonces, ACK/NACK.

A plain class, no I/O: the server feeds it requests (``on_request``), asks it what to send
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
agent restarted), so a secret it still holds in the wanted version is not sent again.
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
