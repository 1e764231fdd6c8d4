"""``gossamer describe mesh``: the Mesh's mesh-wide settings and, per end-user issuer, where
its keys come from and, for a ``jwks.uri``, what the control plane knows of fetching them:
the keys the proxies verify with now, when a fetch last succeeded, since when fetches fail
and the last error (``controlplane.jwks_refresh``; before this, only in the log).

Pure: the API passes the model and the refresher; the answer is plain JSON data.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from gossamer.controlplane.jwks_refresh import FetchState, JwksRefresher
from gossamer.model.authentication import JwtIssuer
from gossamer.model.internal import FetchedJwks, fetched_jwks_key
from gossamer.model.snapshot import ModelSnapshot

#: what ``fetch`` means, said once in every answer
FETCH_NOTE = (
    "this control plane's fetches of each jwks.uri since it started; a failing fetch changes "
    "nothing: the proxies keep verifying with the keys fetched before"
)


def _time(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at is not None else None


def _kids(jwks: str) -> list[str]:
    try:
        return [str(k.get("kid", "-")) for k in json.loads(jwks)["keys"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


def _keys(model: ModelSnapshot, issuer: JwtIssuer) -> dict[str, Any] | None:
    """The keys stored for ``issuer``'s uri (what the proxies verify with), if any."""
    record = model.resources.get(fetched_jwks_key(issuer.issuer))
    if not isinstance(record, FetchedJwks) or record.spec.uri != issuer.jwks.uri:
        return None
    return {"fetchedAt": _time(record.spec.fetchedAt), "kids": _kids(record.spec.jwks)}


def _fetch(state: FetchState | None, refresher: JwksRefresher) -> dict[str, Any] | None:
    if state is None:
        return None
    return {
        "lastSuccess": _time(state.succeeded_at),
        "failingSince": _time(state.failing_since),
        "error": state.error,
        "failures": state.failures,
        "nextAttemptIn": round(refresher.due_in(state), 1),
    }


def _issuer(
    model: ModelSnapshot,
    issuer: JwtIssuer,
    states: dict[str, FetchState],
    r: JwksRefresher,
    fetcher: str | None,
) -> dict[str, Any]:
    jwks = issuer.jwks
    source = "uri" if jwks.uri else "inline" if jwks.inline else "file"
    out: dict[str, Any] = {"issuer": issuer.issuer, "audiences": issuer.audiences}
    out["source"] = source
    if jwks.uri is None:
        return {**out, "kids": _kids(jwks.inline or "")}
    state = states.get(issuer.issuer)
    fetched = state if state is not None and state.uri == jwks.uri else None
    out |= {"uri": jwks.uri, "refreshInterval": jwks.refresh.total_seconds()}
    if fetcher is not None:
        out["fetchedBy"] = fetcher
    return {**out, "keys": _keys(model, issuer), "fetch": _fetch(fetched, r)}


def describe_mesh(
    model: ModelSnapshot, refresher: JwksRefresher, fetcher: str | None = None
) -> dict[str, Any]:
    """The Mesh's settings an operator checks first, and its end-user issuers' keys.
    ``fetcher``: the replica that fetches ``jwks.uri`` keys when it is not this one (the
    singletons' leader, docs/store.md); an issuer's ``fetch`` is then None here."""
    mesh = model.mesh
    states = {s.issuer: s for s in refresher.states()}
    return {
        "mesh": {
            "name": mesh.metadata.name,
            "trustDomain": mesh.spec.trustDomain,
            "mtls": mesh.spec.mtls.mode,
            "authorization": mesh.spec.authorization.mode,
        },
        "issuers": [
            _issuer(model, j, states, refresher, fetcher) for j in mesh.spec.authentication.jwt
        ],
        "fetchNote": FETCH_NOTE,
    }
