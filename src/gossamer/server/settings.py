"""The control plane's settings (``gossamer control-plane``'s flags) and the checks and
derived addresses that depend on nothing but them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from gossamer.api.body_limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESOURCE_BYTES
from gossamer.controlplane.store_loss import DEFAULT_GRACE
from gossamer.errors import ConfigError
from gossamer.registry.liveness import LivenessSettings
from gossamer.server.authz_child import AuthzSettings
from gossamer.server.connection_guard import ApiServerLimits
from gossamer.server.listen import is_loopback
from gossamer.server.rate_limit import RateLimitSettings
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.xds.auth import XdsTlsMode
from gossamer.xds.monitor import FORGET_AFTER
from gossamer.xds.server import Keepalive


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    api_addr: tuple[str, int] = ("127.0.0.1", 7070)
    xds_addr: tuple[str, int] = ("127.0.0.1", 18000)
    #: a store location for ``open_store``; default: SQLite in data_dir
    store: str | None = None
    #: seconds an etcd store may not answer before the xDS streams are closed
    #: (--store-loss-grace; writes are refused at once; docs/store.md)
    store_loss_grace: float = DEFAULT_GRACE
    #: when a host is dead (docs/agent-protocol.md, "The liveness rule")
    liveness: LivenessSettings = field(default_factory=LivenessSettings)
    #: ``required`` (the default): mTLS only, on xds_addr; ``optional``: plaintext on
    #: xds_addr and mTLS on xds_tls_addr; ``off``: plaintext only (docs/security.md, "xDS")
    xds_tls: XdsTlsMode = "required"
    #: where xDS is served over mTLS in ``optional`` mode; default: xds_addr's host, port 0
    #: (a free one, logged and advertised to agents at join)
    xds_tls_addr: tuple[str, int] | None = None
    #: serve the REST API over TLS with the control plane's certificate from the mesh CA
    #: (``--api-tls off``: plaintext, on a loopback --api-addr only)
    api_tls: bool = True
    #: pings from the xDS server, so a dead or frozen proxy's stream ends
    xds_keepalive: Keepalive = field(default_factory=Keepalive)
    #: seconds a disconnected proxy with no Workload/Gateway stays in proxy-status
    forget_proxies_after: float = FORGET_AFTER
    #: the REST API's deadlines and connection cap (--api-header-timeout ...)
    api_limits: ApiServerLimits = field(default_factory=ApiServerLimits)
    #: allow a non-loopback --xds-addr served in plaintext (--xds-tls off or optional)
    insecure_listen: bool = False
    #: a request body larger than this is refused before it is parsed (--max-request-bytes)
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    #: a resource larger than this as JSON is refused (--max-resource-bytes)
    max_resource_bytes: int = DEFAULT_MAX_RESOURCE_BYTES
    #: host names the REST API answers to besides IP addresses, localhost and the
    #: --api-addr host (--api-host; any other Host is refused: DNS rebinding)
    api_hosts: tuple[str, ...] = ()
    #: the global rate-limit service: a supervised child, elsewhere, or none (--ratelimit)
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    #: the NGAC decision point for end users: a supervised child, elsewhere, or none
    #: (--authz-service)
    authz_service: AuthzSettings = field(default_factory=AuthzSettings)
    #: the telemetry service: a supervised child, elsewhere, or none (--telemetry)
    telemetry: TelemetrySettings = field(default_factory=TelemetrySettings)


def parse_addr(text: str, option: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{option}: {text!r} is not HOST:PORT (e.g. 127.0.0.1:7070)")
    return host.strip("[]") or "127.0.0.1", int(port)


def tls_address(settings: Settings) -> tuple[str, int]:
    """Where xDS is served over mTLS: ``--xds-addr`` itself in ``required`` mode; else
    ``--xds-tls-addr``, by default ``--xds-addr``'s host on a free port (port 0)."""
    if settings.xds_tls == "required":
        return settings.xds_addr
    if settings.xds_tls_addr is not None:
        return settings.xds_tls_addr
    return settings.xds_addr[0], 0


def certificate_hosts(settings: Settings) -> list[str]:
    """The names the control plane's server certificate carries: the API's and xDS's
    listen hosts, each ``--api-host``, and ``localhost`` with a loopback address."""
    hosts = [settings.api_addr[0], tls_address(settings)[0], *settings.api_hosts]
    if any(is_loopback(h) for h in hosts):
        hosts.append("localhost")
    return hosts


def check_api_tls(settings: Settings) -> None:
    if not settings.api_tls and not is_loopback(settings.api_addr[0]):
        host, port = settings.api_addr
        raise ConfigError(
            f"--api-tls off: the REST API may serve plaintext on a loopback --api-addr only, "
            f"not {host}:{port} (tokens and credentials would cross the network in the "
            "clear); drop --api-tls off, or listen on 127.0.0.1"
        )
