"""Envoy's admin API: the one client the agent, the gateway, the control plane's
``proxy-config`` and the tests use.

Every call that fails raises ``EnvoyError`` saying which Envoy, which call, and what to
check; the predicates (``ready``, ``answers``) say False instead, for polling. The admin API
is unauthenticated and bound to loopback, so the client never uses proxy settings from the
environment (``trust_env=False``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from gossamer.cancel import raise_if_cancelling
from gossamer.errors import EnvoyError

#: how long one admin call may take (the API answers from memory: seconds mean trouble)
ADMIN_TIMEOUT = 10.0


class EnvoyAdmin:
    """The admin API of one Envoy at ``address`` (``HOST:PORT``).

    ``name`` names the Envoy in errors. ``diagnose``, if given, is asked when the API cannot
    be reached and may return a better explanation (an ``EnvoyProcess`` says the process
    exited, with its log); its text replaces the generic hint.
    """

    def __init__(
        self,
        address: str,
        *,
        name: str = "envoy",
        timeout: float = ADMIN_TIMEOUT,
        diagnose: Callable[[], str | None] | None = None,
    ) -> None:
        self.address = address
        self.name = name
        self._diagnose = diagnose
        self._http = httpx.AsyncClient(
            base_url=f"http://{address}", timeout=timeout, trust_env=False
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- any path ----------------------------------------------------------------------

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """GET an admin path (e.g. ``/clusters``); the body. Non-2xx raises EnvoyError."""
        return (await self._request("GET", path, params)).text

    async def post(self, path: str, params: Mapping[str, str] | None = None) -> str:
        """POST an admin path (e.g. ``/logging``); the body. Non-2xx raises EnvoyError."""
        return (await self._request("POST", path, params)).text

    async def _request(
        self, method: str, path: str, params: Mapping[str, str] | None
    ) -> httpx.Response:
        call = f"{self.name}: admin {method} {path} at {self.address}"
        try:
            response = await self._http.request(method, path, params=params)
        except httpx.HTTPError as exc:
            raise_if_cancelling()
            why = self._diagnose() if self._diagnose is not None else None
            raise EnvoyError(
                f"{call} failed ({exc!r}); "
                + (why or "check that this Envoy still runs and its admin API listens there")
            ) from exc
        if response.is_error:
            raise EnvoyError(
                f"{call} answered {response.status_code}: {response.text.strip()[:500]}"
            )
        return response

    async def _json(self, path: str, params: Mapping[str, str]) -> Any:
        text = await self.get(path, params)
        try:
            return json.loads(text)
        except ValueError:
            raise EnvoyError(
                f"{self.name}: admin GET {path} at {self.address} did not answer JSON "
                f"({text[:120]!r}); is that address an Envoy admin API?"
            ) from None

    # ---- predicates (for polling) ------------------------------------------------------

    async def ready(self) -> bool:
        """Whether Envoy is LIVE (``/ready`` answers 200: initialised, serving)."""
        try:
            response = await self._http.get("/ready")
        except httpx.HTTPError:
            raise_if_cancelling()
            return False
        return response.status_code == 200

    async def answers(self) -> bool:
        """Whether the admin API answers at all (an Envoy still waiting for its first
        configuration answers but is not ready)."""
        try:
            response = await self._http.get("/server_info")
        except httpx.HTTPError:
            raise_if_cancelling()
            return False
        return response.status_code == 200

    # ---- typed reads -------------------------------------------------------------------

    async def server_info(self) -> dict[str, Any]:
        """``/server_info``: version, state, uptime, command-line options."""
        info: dict[str, Any] = await self._json("/server_info", {})
        return info

    async def stats(self, filter_regex: str | None = None) -> dict[str, int]:
        """Counters and gauges by name, optionally only names matching ``filter_regex``
        (histograms and text readouts are left out)."""
        params = {"format": "json"}
        if filter_regex is not None:
            params["filter"] = filter_regex
        body = await self._json("/stats", params)
        return {
            s["name"]: s["value"] for s in body.get("stats", ()) if isinstance(s.get("value"), int)
        }

    async def clusters(self) -> dict[str, Any]:
        """``/clusters?format=json``: every cluster with its hosts and their health."""
        body: dict[str, Any] = await self._json("/clusters", {"format": "json"})
        return body

    async def listener_addresses(self) -> dict[str, tuple[str, int]]:
        """Where each active listener is bound, by name (listeners on port 0 included)."""
        body = await self._json("/listeners", {"format": "json"})
        addresses: dict[str, tuple[str, int]] = {}
        for status in body.get("listener_statuses", ()):
            socket_address = status.get("local_address", {}).get("socket_address")
            if socket_address is not None:
                addresses[status["name"]] = (
                    socket_address["address"],
                    int(socket_address.get("port_value", 0)),
                )
        return addresses

    async def config_dump(
        self, *, include_eds: bool = False, resource: str | None = None
    ) -> dict[str, Any]:
        """``/config_dump``; endpoints are in it only with ``include_eds``; ``resource``
        keeps one part (e.g. ``"dynamic_active_clusters"``)."""
        params: dict[str, str] = {}
        if include_eds:
            params["include_eds"] = ""
        if resource is not None:
            params["resource"] = resource
        dump: dict[str, Any] = await self._json("/config_dump", params)
        return dump

    async def open_connections(self) -> int:
        """Client connections open on the listeners (the admin listener not counted)."""
        stats = await self.stats(r"^listener\..*\.downstream_cx_active$")
        return sum(v for k, v in stats.items() if not k.startswith("listener.admin."))

    # ---- actions -----------------------------------------------------------------------

    async def fail_health_checks(self) -> None:
        """``/healthcheck/fail``: load balancers that health-check Envoy stop sending."""
        await self.post("/healthcheck/fail")

    async def drain_listeners(self, *, graceful: bool = True, inbound_only: bool = False) -> None:
        """``/drain_listeners``: stop accepting; gracefully, open HTTP/1 connections get
        ``Connection: close`` and HTTP/2 ones GOAWAY over ``--drain-time-s``."""
        params: dict[str, str] = {}
        if graceful:
            params["graceful"] = ""
        if inbound_only:
            params["inboundonly"] = ""
        await self.post("/drain_listeners", params)

    async def quitquitquit(self) -> None:
        """``/quitquitquit``: Envoy exits cleanly (status 0)."""
        await self.post("/quitquitquit")
