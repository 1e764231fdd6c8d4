"""``gossamer control-plane``: run until SIGINT or SIGTERM, then shut down cleanly."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from gossamer.api.body_limits import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_MAX_RESOURCE_BYTES
from gossamer.controlplane.store_loss import DEFAULT_GRACE, check_grace
from gossamer.registry.liveness import LivenessSettings
from gossamer.server.app import create_app
from gossamer.server.authz_child import AuthzSettings
from gossamer.server.connection_guard import ApiServerLimits
from gossamer.server.http_server import raise_fd_limit
from gossamer.server.rate_limit import RateLimitSettings
from gossamer.server.settings import Settings, parse_addr
from gossamer.server.telemetry_child import TelemetrySettings
from gossamer.xds.auth import XdsTlsMode
from gossamer.xds.monitor import FORGET_AFTER
from gossamer.xds.server import Keepalive


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with create_app(settings) as app:
        xds = [f"xDS {h}:{p}" for h, p in (app.xds_addr,) if p]
        xds += [f"xDS mTLS {h}:{p}" for h, p in (app.xds_tls_addr,) if p]
        print(
            f"gossamer control plane: API {app.api_url}  {'  '.join(xds)}"
            f"  data {settings.data_dir}",
            flush=True,
        )
        if app.rate_limit_address is not None:
            rl = app.rate_limit_address
            how = "a child while a rule needs it" if app.rate_limit_child else "elsewhere"
            print(f"global rate limits: {rl.host}:{rl.port} ({how})", flush=True)
        if app.authz_address is not None:
            dp = app.authz_address
            how = "a child while a service decides end users" if app.authz_child else "elsewhere"
            print(f"end-user decision point: {dp.host}:{dp.port} ({how})", flush=True)
        t = app.telemetry
        if t is not None and t.address is not None:
            how = f"a child, query API {t.upstream.url}" if t.child else "elsewhere"
            print(f"telemetry: {t.address.host}:{t.address.port} ({how})", flush=True)
        if app.admin_token_written is not None:
            print(
                f"wrote the first operator token to {app.admin_token_written} (0600): "
                f"export GOSSAMER_TOKEN=$(cat {app.admin_token_written})",
                flush=True,
            )
        await stop.wait()


def main(
    data_dir: Path | str,
    api_addr: str,
    xds_addr: str,
    *,
    store: str | None = None,
    store_loss_grace: float = DEFAULT_GRACE,
    insecure_listen: bool = False,
    api_limits: ApiServerLimits | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    max_resource_bytes: int = DEFAULT_MAX_RESOURCE_BYTES,
    liveness: LivenessSettings | None = None,
    xds_keepalive: Keepalive | None = None,
    forget_proxies_after: float = FORGET_AFTER,
    api_hosts: tuple[str, ...] = (),
    xds_tls: XdsTlsMode = "required",
    xds_tls_addr: str | None = None,
    api_tls: bool = True,
    rate_limit: RateLimitSettings | None = None,
    authz_service: AuthzSettings | None = None,
    telemetry: TelemetrySettings | None = None,
) -> None:
    settings = Settings(
        data_dir=Path(data_dir),
        api_addr=parse_addr(api_addr, "--api-addr"),
        xds_addr=parse_addr(xds_addr, "--xds-addr"),
        store=store,
        store_loss_grace=check_grace(store_loss_grace),
        api_limits=api_limits or ApiServerLimits(),
        insecure_listen=insecure_listen,
        max_request_bytes=max_request_bytes,
        max_resource_bytes=max_resource_bytes,
        liveness=liveness or LivenessSettings(),
        xds_keepalive=xds_keepalive or Keepalive(),
        forget_proxies_after=forget_proxies_after,
        api_hosts=api_hosts,
        xds_tls=xds_tls,
        xds_tls_addr=parse_addr(xds_tls_addr, "--xds-tls-addr") if xds_tls_addr else None,
        api_tls=api_tls,
        rate_limit=rate_limit or RateLimitSettings(),
        authz_service=authz_service or AuthzSettings(),
        telemetry=telemetry or TelemetrySettings(),
    )
    raise_fd_limit()
    asyncio.run(serve(settings))
