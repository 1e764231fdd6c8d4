"""Keeping the keys of the Mesh's ``jwks.uri`` issuers (docs/ngac.md, "End users").

The control plane fetches each uri (``jwks_fetch``) on every apply of the Mesh and then
every ``refreshInterval`` (default 5 min), and keeps the keys it got as a ``FetchedJwks``
record in the system namespace, written only when they change. Translation reads that
record like any resource (``translate.jwt``): the proxies get the keys inline and never
reach the identity provider, and a key rotation there reaches them within one interval.

A fetch that fails changes nothing: the last keys stay (in the store, so also across a
restart of the control plane) and the data plane keeps verifying with them; a log line per
attempt says what fails and since when (``states`` has the same, and ``gossamer describe
mesh`` shows it: ``controlplane.describe_mesh``), and the next attempt comes sooner (1 s,
doubling, at most a minute or the interval). An issuer whose uri was never fetched has no
keys, so its tokens are refused (401), never accepted. Records of issuers the Mesh no
longer fetches are deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gossamer.controlplane.jwks_fetch import JwksFetcher
from gossamer.controlplane.plane import ControlPlane
from gossamer.errors import GossamerError
from gossamer.model.authentication import JwtIssuer
from gossamer.model.base import Resource
from gossamer.model.internal import FetchedJwks, fetched_jwks_key
from gossamer.types import API_VERSION, ResourceKey

log = logging.getLogger(__name__)

#: the first retry after a failed fetch (s); each further failure doubles it
RETRY_FIRST = 1.0
#: retries come at least this often (s), or every interval if that is shorter
RETRY_MAX = 60.0


def retry_after(failures: int, interval: float) -> float:
    """Seconds until the next attempt after ``failures`` failed ones in a row."""
    doubled: float = RETRY_FIRST * 2.0 ** min(max(failures - 1, 0), 16)
    return min(interval, RETRY_MAX, doubled)


@dataclass
class FetchState:
    """What this control plane knows of one issuer's uri (for logs and ``states``)."""

    issuer: str
    uri: str
    #: when a fetch last succeeded (None: not since this control plane started)
    succeeded_at: datetime | None = None
    #: since when fetches fail, and the last error (None: the last one succeeded)
    failing_since: datetime | None = None
    error: str | None = None
    failures: int = 0
    #: when the next fetch is due (the refresher's clock)
    due: float = 0.0


def _record(issuer: JwtIssuer, jwks: str, fetched_at: datetime) -> FetchedJwks:
    key = fetched_jwks_key(issuer.issuer)
    return FetchedJwks.model_validate(
        {
            "apiVersion": API_VERSION,
            "kind": key.kind,
            "metadata": {"name": key.name, "namespace": key.namespace},
            "spec": {
                "issuer": issuer.issuer,
                "uri": issuer.jwks.uri,
                "jwks": jwks,
                "fetchedAt": fetched_at.isoformat(),
            },
        }
    )


def _kids(jwks: str) -> str:
    return ", ".join(str(k.get("kid", "-")) for k in json.loads(jwks)["keys"])


class JwksRefresher:
    """Fetches the Mesh's ``jwks.uri`` issuers when due and stores their keys; ``run``
    until cancelled (in the control plane's TaskGroup)."""

    def __init__(
        self,
        plane: ControlPlane,
        fetcher: JwksFetcher | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._plane = plane
        self._fetcher = fetcher or JwksFetcher()
        self._clock = clock
        self._states: dict[str, FetchState] = {}
        self._wake = asyncio.Event()
        #: fetch every uri on the next pass (at start, and after each Mesh change)
        self._all_due = True
        plane.add_listener({"Mesh"}, self._mesh_changed)

    def _mesh_changed(self, changes: Mapping[ResourceKey, Resource | None], revision: int) -> None:
        self._all_due = True
        self._wake.set()

    def states(self) -> list[FetchState]:
        """Each fetched issuer's state, by issuer."""
        return [self._states[k] for k in sorted(self._states)]

    def due_in(self, state: FetchState) -> float:
        """Seconds until ``state``'s next fetch is due (0: now, or at the next pass)."""
        return max(0.0, state.due - self._clock())

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.refresh()
            except Exception:  # a bug here must not stop the control plane
                log.exception("refreshing the issuers' JWKS failed; trying again in a minute")
                for state in self._states.values():
                    state.due = min(state.due, self._clock() + RETRY_MAX)
            delay = self.next_in()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def next_in(self) -> float | None:
        """Seconds until the next fetch is due (None: nothing to fetch until the Mesh
        changes)."""
        if not self._states:
            return None
        return max(0.0, min(s.due for s in self._states.values()) - self._clock())

    async def refresh(self) -> None:
        """Fetch each issuer's uri that is due (every one after a Mesh change); store the
        keys that changed; delete the keys of issuers no longer fetched."""
        model = self._plane.model
        assert model is not None, "load the plane first"
        issuers = {j.issuer: j for j in model.mesh.spec.authentication.jwt if j.jwks.uri}
        all_due, self._all_due = self._all_due, False
        for name in set(self._states) - set(issuers):
            del self._states[name]
        due: list[tuple[JwtIssuer, FetchState]] = []
        for name, j in issuers.items():
            state = self._states.get(name)
            if state is None or state.uri != j.jwks.uri:
                assert j.jwks.uri is not None
                state = self._states[name] = FetchState(name, j.jwks.uri)
            if all_due or state.due <= self._clock():
                due.append((j, state))
        outcomes = await self._fetch_all(due)
        puts = [
            r
            for (j, state), jwks in zip(due, outcomes, strict=True)
            if (r := self._took(j, state, jwks))
        ]
        stale = self._stale(set(issuers)) if all_due else []
        if puts or stale:
            try:
                await self._plane.apply(puts, deletes=stale, internal=True, fenced=True)
            except GossamerError as e:
                log.error("could not store the issuers' new keys (%s); trying again soon", e)
                for _, state in due:
                    state.due = self._clock() + RETRY_FIRST
                self._all_due = bool(stale)

    async def _fetch_all(self, due: Sequence[tuple[JwtIssuer, FetchState]]) -> list[str | None]:
        async def one(issuer: JwtIssuer, state: FetchState) -> str | None:
            try:
                jwks = await self._fetcher.fetch(issuer)
            except GossamerError as e:
                self._failed(issuer, state, str(e))
                return None
            except Exception as e:  # a bug: logged, and counted as a failed fetch
                log.exception("fetching the JWKS of issuer %r failed", issuer.issuer)
                self._failed(issuer, state, f"{type(e).__name__}: {e}")
                return None
            return jwks

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(j, state)) for j, state in due]
        return [t.result() for t in tasks]

    def _failed(self, issuer: JwtIssuer, state: FetchState, error: str) -> None:
        now = datetime.now(UTC)
        state.failures += 1
        state.failing_since = state.failing_since or now
        state.error = error
        wait = retry_after(state.failures, issuer.jwks.refresh.total_seconds())
        state.due = self._clock() + wait
        kept = self._kept(issuer)
        keeping = (
            f"proxies keep the keys fetched at {kept.spec.fetchedAt.isoformat()}"
            if kept is not None
            else "the issuer has no keys yet: its tokens are refused (401)"
        )
        log.warning(
            "%s; failing since %s (%d attempts); %s; next attempt in %gs",
            error,
            state.failing_since.isoformat(timespec="seconds"),
            state.failures,
            keeping,
            wait,
        )

    def _took(self, issuer: JwtIssuer, state: FetchState, jwks: str | None) -> FetchedJwks | None:
        """After a fetch: the record to store if ``jwks`` are new keys (None: it failed, or
        the keys are those stored)."""
        if jwks is None:
            return None
        now = datetime.now(UTC)
        if state.failing_since is not None:
            log.info(
                "the JWKS of issuer %r from %s is fetched again (failing since %s)",
                issuer.issuer,
                state.uri,
                state.failing_since.isoformat(timespec="seconds"),
            )
        state.succeeded_at, state.failing_since, state.error, state.failures = now, None, None, 0
        state.due = self._clock() + issuer.jwks.refresh.total_seconds()
        kept = self._kept(issuer)
        if kept is not None and kept.spec.jwks == jwks:
            return None
        log.info("new keys for issuer %r from %s: kid %s", issuer.issuer, state.uri, _kids(jwks))
        return _record(issuer, jwks, now)

    def _kept(self, issuer: JwtIssuer) -> FetchedJwks | None:
        """The stored keys of ``issuer`` if they were fetched from its uri now."""
        model = self._plane.model
        record = model.resources.get(fetched_jwks_key(issuer.issuer)) if model else None
        if isinstance(record, FetchedJwks) and record.spec.uri == issuer.jwks.uri:
            return record
        return None

    def _stale(self, fetched: set[str]) -> list[ResourceKey]:
        model = self._plane.model
        assert model is not None
        return [
            key
            for key, r in model.resources.items()
            if isinstance(r, FetchedJwks) and r.spec.issuer not in fetched
        ]
