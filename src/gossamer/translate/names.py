"""How Gossamer names the Envoy resources it generates. Nothing else spells these out.

Names contain no dots, so Envoy's default stat-tag extraction leaves them whole.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from urllib.parse import quote, unquote

from gossamer.model.snapshot import Ref

XDS_CLUSTER = "gossamer-xds"
#: the static cluster to the local agent's SDS server (a Unix socket; issue 9 contract)
SDS_CLUSTER = "gossamer-sds"
#: SDS secret names: the workload's certificate chain + key, and the mesh's trusted CAs
IDENTITY_SECRET = "identity"
TRUST_BUNDLE_SECRET = "trust-bundle"

#: the labels a subset selects by, sorted by key; ``()`` is the whole service
Subset = tuple[tuple[str, str], ...]
#: (service, port name, subset): one outbound cluster and its endpoint set
ClusterRef = tuple[Ref, str, Subset]


def subset_of(labels: Mapping[str, str]) -> Subset:
    """The canonical form of a Route destination's ``subset`` labels."""
    return tuple(sorted(labels.items()))


def _svc(ref: Ref) -> str:
    return f"{ref[0]}/{ref[1]}"


def _escape(text: str) -> str:
    """Percent-encode (UTF-8) all but letters, digits, ``-``, ``_`` and ``~``.

    ``%``, ``|``, ``,``, ``=``, ``/`` and ``.`` are always escaped, so the separators
    around an escaped text stay unambiguous and no dot reaches a name.
    """
    return quote(text, safe="").replace(".", "%2E")


def subset_suffix(subset: Subset) -> str:
    """``k=v`` pairs sorted by key and joined with ``,``, keys and values escaped."""
    return ",".join(f"{_escape(k)}={_escape(v)}" for k, v in subset)


def outbound_cluster(service: Ref, port: str, subset: Subset = ()) -> str:
    """The cluster (and endpoint set) of one service port or of one subset of it.

    ``outbound|default/cart|http`` holds every instance; a subset's cluster appends its
    labels: ``outbound|default/cart|http|version=v2``,
    ``outbound|default/cart|http|app%2Ekubernetes%2Eio%2Fversion=1%2E2,tier=gold``.
    Distinct (service, port, subset) triples give distinct names.
    """
    name = f"outbound|{_svc(service)}|{port}"
    return f"{name}|{subset_suffix(subset)}" if subset else name


def outbound_prefix(service: Ref) -> str:
    """What the names of every cluster (and endpoint set) of ``service`` start with."""
    return f"outbound|{_svc(service)}|"


def outbound_route(service: Ref, port: str) -> str:
    """The route configuration every caller of one service port shares."""
    return f"outbound|{_svc(service)}|{port}"


def outbound_listener(address: str, port: int) -> str:
    return f"outbound|{address}:{port}"


def inbound_cluster(port: str) -> str:
    """The local app behind a sidecar, one cluster per service port."""
    return f"inbound|{port}"


def local_cluster(service: Ref) -> str:
    """A sidecar's local cluster (its bootstrap's ``cluster_manager.local_cluster_name``,
    and that cluster's endpoint set): the healthy instances of its own service that share
    a ``rateLimit`` with ``scope: service`` (``translate.local_cluster``)."""
    return f"local|{_svc(service)}"


def inbound_listener(port: str) -> str:
    return f"inbound|{port}"


def inbound_route(port: str) -> str:
    """A sidecar's route table to its local app on one port (RDS, so a rule or policy
    change on it never changes the listener)."""
    return f"inbound|{port}"


def gateway_listener(gateway: Ref) -> str:
    return f"gateway|{_svc(gateway)}"


def gateway_route(gateway: Ref) -> str:
    return f"gateway|{_svc(gateway)}"


def gateway_redirect_listener(gateway: Ref) -> str:
    """The plaintext listener of a gateway's ``tls.httpsRedirect``."""
    return f"gateway|{_svc(gateway)}|http"


#: what the SDS secret of a gateway's external certificate starts with
GATEWAY_CERT_PREFIX = "gateway-cert:"


def _escape_path(path: str) -> str:
    return quote(path, safe="/").replace(".", "%2E")


def gateway_certificate_secret(certificate: str, private_key: str) -> str:
    """The SDS secret of one certificate a gateway serves: the paths of its two files on the
    gateway's host, escaped (``:`` and ``.`` too), e.g.
    ``gateway-cert:/etc/tls/shop%2Epem:/etc/tls/shop%2Ekey``. The gateway runner reads the
    files a name gives (``gateway_certificate_files``); other files give another name."""
    return f"{GATEWAY_CERT_PREFIX}{_escape_path(certificate)}:{_escape_path(private_key)}"


def gateway_certificate_files(secret: str) -> tuple[str, str] | None:
    """(certificate, private key) paths of a ``gateway_certificate_secret`` name; None for
    any other name."""
    if not secret.startswith(GATEWAY_CERT_PREFIX):
        return None
    parts = secret.removeprefix(GATEWAY_CERT_PREFIX).split(":")
    paths = [unquote(p) for p in parts]
    if len(paths) != 2 or not all(p.startswith("/") and posixpath.normpath(p) == p for p in paths):
        return None  # (what Gateway.spec.tls accepts: plain absolute paths)
    return paths[0], paths[1]
