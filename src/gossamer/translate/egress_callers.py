"""Who may use an ExternalService at its egress gateway: the callers that depend on it.

A workload lists an ExternalService in ``spec.dependencies``; its service's SPIFFE id
(``spiffe://<td>/ns/<ns>/sa/<service>``, what its sidecar's certificate names) is then a
caller of that service. On the gateway's egress listener for it, the mTLS filter chain lets
exactly those callers through and nobody else, though every mesh workload holds a
certificate the listener's TLS accepts:

- ``tcp`` and ``tls``: a network RBAC filter (``network_check``) after the one-workload-id
  check; a denied connection is closed before its first byte goes out
  (``<NETWORK_STATS><ns>/<name>.rbac.denied``).
- ``http`` and ``https``: the HTTP RBAC filter first in the HCM (``http_check``): a denied
  request is answered ``403`` by the gateway (``http.egress|<ns>/<name>.rbac.denied``),
  which the caller's sidecar hands its app as it is (a 403 is not retried), with the
  reason ``rbac_access_denied_matched_policy[egress-callers:<ns>/<name>]``. A network check
  would instead reset the caller's multiplexed HTTP/2 connection: its app would see a 503
  its sidecar may retry, indistinguishable from a gateway that is down.

Both are an RBAC ``matcher``: an exact-match map on the peer certificate's URI SAN (one
hash lookup, whatever the number of callers), ``on_no_match`` deny. The chain's earlier
``peer_id_filter`` already requires the certificate to name exactly one workload id.
Without mTLS on the hop (no gateway identity, or the Mesh's mTLS ``off``) a connection
carries no identity and nothing here applies: docs/traffic.md, "Egress gateway".
"""

from __future__ import annotations

from collections import defaultdict

from envoy.config.listener.v3 import listener_components_pb2 as lc_pb2
from envoy.config.rbac.v3 import rbac_pb2 as rbac_config_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as http_rbac_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import (
    http_connection_manager_pb2 as hcm_pb2,
)
from envoy.extensions.filters.network.rbac.v3 import rbac_pb2 as net_rbac_pb2
from envoy.extensions.matching.common_inputs.ssl.v3 import ssl_inputs_pb2
from xds.core.v3 import extension_pb2
from xds.type.matcher.v3 import matcher_pb2

from gossamer.model.snapshot import ModelSnapshot, Ref
from gossamer.model.workload import Workload
from gossamer.translate.common import any_of
from gossamer.translate.memo import Memo
from gossamer.translate.rbac import RBAC_ACTION, RBAC_FILTER, URI_SAN_INPUT
from gossamer.translate.tls import NETWORK_RBAC
from gossamer.types import spiffe_id

#: the stat prefix of a tcp/tls egress listener's caller check (then ``<ns>/<name>.``)
NETWORK_STATS = "egress_callers|"

Callers = tuple[str, ...]


def workload_calls(snap: ModelSnapshot, w: Workload) -> set[tuple[Ref, str]]:
    """The ExternalServices ``w`` makes a caller of, each with that caller's SPIFFE id (its
    service's): what ``w`` adds to their egress gateways' checks. A workload without a
    sidecar adds nothing (its calls do not go through the mesh)."""
    if not w.spec.sidecar:
        return set()
    ns = w.metadata.namespace
    refs = {(d.namespace or ns, d.service) for d in w.spec.dependencies}
    external = [ref for ref in refs if ref in snap.external_services]
    if not external:
        return set()
    caller = spiffe_id(snap.mesh.spec.trustDomain, ns, w.spec.service)
    return {(ref, caller) for ref in external}


def _all_callers(snap: ModelSnapshot) -> dict[Ref, Callers]:
    """For every ExternalService some sidecar depends on, its callers' SPIFFE ids, sorted."""
    found: dict[Ref, set[str]] = defaultdict(set)
    for w in snap.workloads.values():
        for ref, caller in workload_calls(snap, w):
            found[ref].add(caller)
    return {ref: tuple(sorted(ids)) for ref, ids in found.items()}


def callers(memo: Memo, snap: ModelSnapshot, ref: Ref) -> Callers:
    """The SPIFFE ids that may use ExternalService ``ref`` at its gateway (memoised per
    Workload generation: one pass over the workloads for every external service)."""
    inputs = (snap.generation("Workload"), snap.generation("ExternalService"), snap.mesh)
    return memo.get("egress-callers", inputs, lambda: _all_callers(snap)).get(ref, ())


def _action(name: str, action: int) -> matcher_pb2.Matcher.OnMatch:
    return matcher_pb2.Matcher.OnMatch(
        action=extension_pb2.TypedExtensionConfig(
            name=RBAC_ACTION,
            typed_config=any_of(rbac_config_pb2.Action(name=name, action=action)),
        )
    )


def policy_name(ref: Ref) -> str:
    """The name of the check's actions: a denial's details read
    ``rbac_access_denied_matched_policy[egress-callers:<ns>/<name>]``."""
    return f"egress-callers:{ref[0]}/{ref[1]}"


def matcher(ref: Ref, allowed: Callers) -> matcher_pb2.Matcher:
    """Allow a peer whose URI SAN is one of ``allowed``; deny everyone else."""
    name = policy_name(ref)
    out = matcher_pb2.Matcher(on_no_match=_action(name, rbac_config_pb2.RBAC.DENY))
    if allowed:
        by_peer = matcher_pb2.Matcher.MatcherTree.MatchMap()
        allow = _action(name, rbac_config_pb2.RBAC.ALLOW)
        for peer in allowed:
            by_peer.map[peer].CopyFrom(allow)
        out.matcher_tree.CopyFrom(
            matcher_pb2.Matcher.MatcherTree(
                input=extension_pb2.TypedExtensionConfig(
                    name=URI_SAN_INPUT, typed_config=any_of(ssl_inputs_pb2.UriSanInput())
                ),
                exact_match_map=by_peer,
            )
        )
    return out


def network_check(ref: Ref, allowed: Callers) -> lc_pb2.Filter:
    """The tcp/tls egress listener's caller check (a connection closed when denied)."""
    rbac = net_rbac_pb2.RBAC(
        stat_prefix=f"{NETWORK_STATS}{ref[0]}/{ref[1]}.", matcher=matcher(ref, allowed)
    )
    return lc_pb2.Filter(name=NETWORK_RBAC, typed_config=any_of(rbac))


def http_check(ref: Ref, allowed: Callers) -> hcm_pb2.HttpFilter:
    """The http/https egress listener's caller check (a 403 when denied)."""
    rbac = http_rbac_pb2.RBAC(matcher=matcher(ref, allowed))
    return hcm_pb2.HttpFilter(name=RBAC_FILTER, typed_config=any_of(rbac))
