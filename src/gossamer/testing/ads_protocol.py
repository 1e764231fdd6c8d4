"""The proxy side of ADS, without I/O: what an Envoy sends, decodes, ACKs and NACKs.

``AdsProtocol`` is fed each response (``receive``) and returns the requests Envoy would send
in reply, in Envoy's order (see /work/shared/envoy-notes.md and docs/xds.md):

* the first request of a stream carries the node (``set_node_on_first_message_only``);
* start-up is EDS for the bootstrap's static EDS clusters (a sidecar's local cluster) ->
  CDS (wildcard) once they have their endpoints (Envoy initialises static clusters before
  it starts CDS) -> EDS for the EDS clusters received -> ACK CDS -> LDS
  (wildcard, once the first clusters have their endpoints) -> ACK EDS -> ECDS for the
  filter configs and RDS for the route configs the listeners' HTTP connection managers
  name -> ACK LDS -> ACK ECDS -> ACK RDS;
* every resource is unpacked from its ``Any`` to its typed message; if one does not decode
  (or a name is missing or repeats) the whole response is NACKed and nothing of it applied;
* each resource is then checked on its own, and like Envoy's cluster and listener managers
  the good ones are applied and the response NACKed naming the bad ones (a rejected update
  leaves the old resource in place): an EDS cluster without an ADS source, endpoints or
  routes never asked for, a listener without an address, sharing one with another
  listener, or naming its routes in a way this proxy cannot fetch, a route table with
  ``validate_clusters`` naming a missing cluster, and whatever a test's ``reject`` matches;
* state-of-the-world ACKs carry the response's ``version_info`` and nonce, NACKs the last
  accepted version, the nonce and ``error_detail``; delta ACKs and NACKs carry the nonce
  (and ``error_detail``), subscription changes no nonce.

Like Envoy, endpoints or routes arriving for names this stream unsubscribed from are
ignored (a response may cross the unsubscribe); ones never subscribed are NACKed, which is
stricter than Envoy and catches a control plane sending what nobody asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import message
from google.rpc import status_pb2

from gossamer.testing.ads_resources import (
    MESSAGES,
    Held,
    _ResourceError,
    eds_name,
    filter_config_names,
    listener_error,
    route_clusters,
    route_names,
)
from gossamer.xds.resources import PUSH_ORDER, ResourceType

C, E, L, R = ResourceType.CLUSTER, ResourceType.ENDPOINT, ResourceType.LISTENER, ResourceType.ROUTE
X = ResourceType.EXTENSION_CONFIG

_INTERNAL = 13  # google.rpc.Code.INTERNAL, what Envoy puts in a NACK's error_detail

Request = Any  # DiscoveryRequest | DeltaDiscoveryRequest
Response = Any  # DiscoveryResponse | DeltaDiscoveryResponse
#: ``predicate(name, message)``: True rejects the response holding that resource
RejectPredicate = Callable[[str, Any], bool]


@dataclass(slots=True)
class TypeView:
    """What the proxy holds and has asked for of one type."""

    type: ResourceType
    resources: dict[str, Held] = field(default_factory=dict)
    #: None: wildcard (clusters, listeners); replaced, never changed in place
    names: set[str] | None = None
    requested: bool = False
    #: SotW: the last accepted version_info; delta: the last accepted system_version_info
    version: str = ""
    nonce: str = ""
    #: names unsubscribed on this stream: late resources for them are ignored, as Envoy does
    dropped: set[str] = field(default_factory=set)
    #: delta: every name the server removed, in order
    removed: list[str] = field(default_factory=list)
    last_error: str | None = None
    responses: int = 0
    acks: int = 0
    nacks: int = 0
    _sorted: tuple[set[str], list[str]] | None = field(default=None, repr=False)

    def sorted_names(self) -> list[str]:
        """``names`` in order, as every SotW request lists them: sorted once per set."""
        names = self.names
        if names is None:
            return []
        cached = self._sorted
        if cached is None or cached[0] is not names:
            cached = self._sorted = (names, sorted(names))
        return cached[1]


@dataclass(slots=True)
class Counters:
    responses: int = 0
    bytes_received: int = 0
    requests: int = 0
    acks: int = 0
    nacks: int = 0
    #: resources ignored because their names were unsubscribed
    ignored: int = 0


@dataclass(frozen=True, slots=True)
class Rejection:
    """A test's order to NACK responses holding a matching resource (see ``reject``)."""

    type: ResourceType
    predicate: RejectPredicate
    reason: str


def resource_type(type_or_url: ResourceType | str) -> ResourceType:
    if isinstance(type_or_url, ResourceType):
        return type_or_url
    rtype = ResourceType.from_url(type_or_url)
    if rtype is None:
        known = ", ".join(t.url for t in ResourceType)
        raise ValueError(f"unknown xDS type URL {type_or_url!r}; use one of {known}")
    return rtype


class AdsProtocol:
    def __init__(self, node: base_pb2.Node, *, delta: bool, static_eds: Iterable[str] = ()) -> None:
        self.node = node
        self.delta = delta
        #: the endpoint sets of the bootstrap's static EDS clusters: asked for from the start
        self.static_eds = frozenset(static_eds)
        self.types = {t: TypeView(t) for t in ResourceType}
        self.counters = Counters()
        #: clusters waiting for their endpoints (after being added or changed)
        self.warming: set[str] = set()
        self.rejections: list[Rejection] = []
        #: when a list: every request sent, as (kind, type) with kind "subscribe" | "ack" |
        #: "nack" (off by default: simulating many proxies allocates nothing per message)
        self.trace: list[tuple[str, ResourceType]] | None = None
        self._node_sent = False

    # -- test controls -------------------------------------------------------------------

    def reject(
        self, type_or_url: ResourceType | str, predicate: RejectPredicate, reason: str
    ) -> Rejection:
        rejection = Rejection(resource_type(type_or_url), predicate, reason)
        self.rejections.append(rejection)
        return rejection

    def lift(self, rejection: Rejection) -> None:
        if rejection in self.rejections:
            self.rejections.remove(rejection)

    # -- the stream ----------------------------------------------------------------------

    def start(self) -> list[Request]:
        """The requests opening a (new) stream: at first EDS for the static EDS clusters,
        or CDS if there are none; after a reconnect every type asked for before, with the
        versions held (SotW version_info, delta initial versions)."""
        self._node_sent = False
        for view in self.types.values():
            view.nonce = ""
        if not self.types[C].requested and not self.types[E].requested:
            if self.static_eds:
                self.warming |= self.static_eds
                self.types[E].requested = True
                self.types[E].names = set(self.static_eds)
                return [self._subscribe(E, set(self.static_eds), set())]
            self.types[C].requested = True
            return [self._subscribe(C, set(), set())]
        out = []
        for t in PUSH_ORDER:
            view = self.types[t]
            if view.requested:
                names = set() if view.names is None else view.names
                out.append(self._subscribe(t, names, set(), resume=True))
        return out

    def receive(self, response: Response, size: int | None = None) -> list[Request]:
        """Process one response; return the requests to send, in Envoy's order."""
        self.counters.responses += 1
        self.counters.bytes_received += response.ByteSize() if size is None else size
        rtype = ResourceType.from_url(response.type_url)
        if rtype is None:
            return []  # like Envoy: a type nobody watches is ignored
        view = self.types[rtype]
        view.responses += 1
        view.nonce = response.nonce
        try:
            decoded = self._decode(rtype, response)
        except _ResourceError as e:
            return [self._nack(view, str(e))]  # nothing of it is applied
        removed = list(response.removed_resources) if self.delta else []
        errors = self._check(rtype, decoded, removed)
        good = {n: h for n, h in decoded.items() if n not in errors}
        follow = self._accept(view, response, good, removed, rejected=errors.keys())
        if errors:
            return [*follow, self._nack(view, "; ".join(errors.values()))]
        return [*follow, self._ack(view, response)]

    # -- decoding and checks -------------------------------------------------------------

    def _decode(self, rtype: ResourceType, response: Response) -> dict[str, Held]:
        """Unpack every resource; a failure rejects the whole response."""
        cls = MESSAGES[rtype]
        items = (
            [(r.name, r.version, r.resource) for r in response.resources]
            if self.delta
            else [(None, response.version_info, a) for a in response.resources]
        )
        view = self.types[rtype]
        out: dict[str, Held] = {}
        for wrapper_name, version, packed in items:
            if packed.type_url != rtype.url:
                raise _ResourceError(
                    f"resource of type {packed.type_url!r} in a {rtype.url} response"
                )
            try:
                msg = cls.FromString(packed.value)
            except message.DecodeError as e:
                raise _ResourceError(f"cannot decode a {rtype.short} resource: {e}") from None
            name = msg.cluster_name if rtype is E else msg.name
            if not name or (wrapper_name is not None and wrapper_name != name):
                raise _ResourceError(
                    f"{rtype.short} resource named {wrapper_name!r} holds {name!r}"
                )
            if name in out:
                raise _ResourceError(f"duplicate {rtype.short} {name!r} in one response")
            if view.names is not None and name not in view.names and name in view.dropped:
                self.counters.ignored += 1
                continue
            out[name] = Held(msg, version)
        return out

    def _check(
        self, rtype: ResourceType, decoded: dict[str, Held], removed: list[str]
    ) -> dict[str, str]:
        """Errors of single resources, by name: like Envoy, the others are applied."""
        errors: dict[str, str] = {}
        view = self.types[rtype]
        for name, held in decoded.items():
            if view.names is not None and name not in view.names:
                errors[name] = f"{rtype.short} {name!r} was never subscribed on this stream"
            for rejection in self.rejections:
                if rejection.type is rtype and rejection.predicate(name, held.message):
                    errors[name] = f"{rejection.reason} ({rtype.short} {name})"
        if rtype is C:
            for name, held in decoded.items():
                c = held.message
                eds = c.eds_cluster_config.eds_config
                if c.type == cluster_pb2.Cluster.EDS and not eds.HasField("ads"):
                    errors[name] = f"cluster {name!r}: EDS config source is not ADS"
        elif rtype is L:
            base = self._after(L, {}, removed)
            for name, held in decoded.items():
                if name not in errors and (error := listener_error(name, held, base)):
                    errors[name] = error
                if name not in errors:
                    base[name] = held
        elif rtype is R:
            clusters = self.types[C].resources
            for name, held in decoded.items():
                if held.message.validate_clusters.value:
                    missing = sorted(route_clusters(held.message) - clusters.keys())
                    if missing:
                        errors[name] = f"route config {name!r}: unknown cluster {missing[0]!r}"
        return errors

    def _after(
        self,
        rtype: ResourceType,
        good: dict[str, Held],
        removed: list[str],
        rejected: Iterable[str] = (),
    ) -> dict[str, Held]:
        """The resources of ``rtype`` held once ``good`` is applied; a ``rejected`` update
        leaves the old resource in place (SotW: absent names are removed)."""
        held = self.types[rtype].resources
        if rtype.full_state and not self.delta:
            return {**{n: held[n] for n in rejected if n in held}, **good}
        if not removed:
            return {**held, **good}
        gone = set(removed)
        return {**{n: h for n, h in held.items() if n not in gone}, **good}

    # -- accepting -----------------------------------------------------------------------

    def _accept(
        self,
        view: TypeView,
        response: Response,
        decoded: dict[str, Held],
        removed: list[str],
        rejected: Iterable[str],
    ) -> list[Request]:
        """Apply the good resources (all of them, or what Envoy keeps of a NACKed response);
        return the subscription changes that follow."""
        rtype = view.type
        before = view.resources
        view.resources = self._after(rtype, decoded, removed, rejected)
        if not rejected:
            view.version = response.system_version_info if self.delta else response.version_info
            view.last_error = None
        if self.delta:
            view.removed.extend(n for n in removed if n in before)
        out: list[Request] = []
        if rtype is C:
            for name, held in decoded.items():
                old = before.get(name)
                # like Envoy's cluster manager: an update with the same content is no update
                if held.message.type == cluster_pb2.Cluster.EDS and (
                    old is None or old.message != held.message
                ):
                    self.warming.add(eds_name(held.message))
            wanted = {
                eds_name(h.message)
                for h in view.resources.values()
                if h.message.type == cluster_pb2.Cluster.EDS
            } | self.static_eds
            self.warming &= wanted
            out += self._resubscribe(E, wanted)
        elif rtype is E:
            self.warming -= decoded.keys()
            cds = self.types[C]
            if not cds.requested and not self.warming:
                cds.requested = True  # the static clusters are initialised: CDS next
                out.append(self._subscribe(C, set(), set()))
        elif rtype is L:
            wanted = set()
            configs: set[str] = set()
            for name, held in view.resources.items():
                wanted |= route_names(name, held.message)
                configs |= filter_config_names(held.message)
            out += self._resubscribe(X, configs)  # (the HTTP filters' ECDS configs)
            out += self._resubscribe(R, wanted)
        lds = self.types[L]
        if not lds.requested and self.types[C].responses and not self.warming:
            lds.requested = True  # the cluster manager is initialised: listeners next
            out.append(self._subscribe(L, set(), set()))
        return out

    def _resubscribe(self, rtype: ResourceType, wanted: set[str]) -> list[Request]:
        view = self.types[rtype]
        current = view.names or set()
        if view.requested and wanted == current:
            return []
        if not view.requested and not wanted:
            return []
        added, gone = wanted - current, current - wanted
        view.requested = True
        view.names = set(wanted)
        view.dropped = (view.dropped | gone) - wanted
        for name in gone:
            view.resources.pop(name, None)
        return [self._subscribe(rtype, added, gone)]

    # -- requests ------------------------------------------------------------------------

    def _subscribe(
        self, rtype: ResourceType, added: set[str], gone: set[str], *, resume: bool = False
    ) -> Request:
        view = self.types[rtype]
        if self.delta:
            req = discovery_pb2.DeltaDiscoveryRequest(
                type_url=rtype.url,
                resource_names_subscribe=sorted(added),
                resource_names_unsubscribe=sorted(gone),
            )
            if resume:
                for name, held in view.resources.items():
                    req.initial_resource_versions[name] = held.version
        else:
            req = discovery_pb2.DiscoveryRequest(
                type_url=rtype.url,
                version_info=view.version,
                response_nonce=view.nonce,
                resource_names=view.sorted_names(),
            )
        return self._sending(req, "subscribe", rtype)

    def _ack(self, view: TypeView, response: Response) -> Request:
        view.acks += 1
        self.counters.acks += 1
        if self.delta:
            req = discovery_pb2.DeltaDiscoveryRequest(
                type_url=view.type.url, response_nonce=response.nonce
            )
        else:
            req = discovery_pb2.DiscoveryRequest(
                type_url=view.type.url,
                version_info=response.version_info,
                response_nonce=response.nonce,
                resource_names=view.sorted_names(),
            )
        return self._sending(req, "ack", view.type)

    def _nack(self, view: TypeView, error: str) -> Request:
        view.nacks += 1
        view.last_error = error
        self.counters.nacks += 1
        detail = status_pb2.Status(code=_INTERNAL, message=error)
        if self.delta:
            req = discovery_pb2.DeltaDiscoveryRequest(
                type_url=view.type.url, response_nonce=view.nonce, error_detail=detail
            )
        else:
            req = discovery_pb2.DiscoveryRequest(
                type_url=view.type.url,
                version_info=view.version,
                response_nonce=view.nonce,
                resource_names=view.sorted_names(),
                error_detail=detail,
            )
        return self._sending(req, "nack", view.type)

    def _sending(self, req: Request, kind: str, rtype: ResourceType) -> Request:
        if not self._node_sent:
            req.node.CopyFrom(self.node)
            self._node_sent = True
        self.counters.requests += 1
        if self.trace is not None:
            self.trace.append((kind, rtype))
        return req
