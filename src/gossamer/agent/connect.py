"""From a host's Credential to the control plane: the one place that builds a verified API
client (``open_registry``), picks the xDS address (``xds_target``) and joins
(``join_control_plane``). The agent and the gateway host both go through here, so they
verify the same way and learn the same addresses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gossamer.agent.client import RegistryClient, split_servers
from gossamer.agent.state import Credential, StateDir
from gossamer.agent.trust import client_context, is_tls, read_ca_file
from gossamer.errors import ConfigError
from gossamer.ports import Address, host_port, parse_host_port, parse_host_ports

log = logging.getLogger(__name__)

#: the control plane's default plaintext xDS port, for a control plane that advertises none
DEFAULT_XDS_PORT = 18000


@dataclass(frozen=True)
class XdsTarget:
    """Where a host's Envoys get their config, and whether over mTLS (their workload or
    gateway certificate, the server checked against the trust bundle)."""

    #: the control plane's replicas (one, or several: Envoy moves to the next when its
    #: stream breaks)
    addresses: tuple[Address, ...]
    tls: bool


def open_registry(cred: Credential, state: StateDir | None = None) -> RegistryClient:
    """A client of the control plane acting as ``cred``'s agent, verifying an
    ``https://`` server against the trust bundle kept since join. With ``state``, a new
    trust bundle in a certificate answer (a root rotation) is kept there."""
    verify = None
    if any(is_tls(s) for s in split_servers(cred.server)):
        if not cred.trust_bundle:
            raise ConfigError(
                f"{cred.server} serves TLS but this host joined without keeping the control "
                "plane's trust bundle (before TLS): join again with `gossamer agent join` "
                "and a new token"
            )
        verify = client_context(cred.trust_bundle.encode("ascii"))
    hook = None
    if state is not None:

        async def keep(bundle: bytes) -> None:
            await asyncio.to_thread(keep_trust_bundle, state, bundle)

        hook = keep
    return RegistryClient(
        cred.server, cred.agent_id, cred.credential, verify=verify, trust_changed=hook
    )


def keep_trust_bundle(state: StateDir, bundle: bytes) -> None:
    """Store ``bundle`` in ``state``'s credential if it differs (blocking)."""
    cred = state.credential()
    text = bundle.decode("ascii")
    if text and text != cred.trust_bundle:
        state.save_credential(dataclasses.replace(cred, trust_bundle=text))
        log.info("kept the control plane's new trust bundle in %s", state.path)


def xds_target(
    cred: Credential,
    *,
    xds: tuple[Address, ...] | None = None,
    xds_tls: tuple[Address, ...] | None = None,
) -> XdsTarget:
    """The overrides (``--xds-tls``, then ``--xds``), else the mTLS addresses kept at
    join, else the plaintext ones."""
    if xds_tls is not None:
        return XdsTarget(xds_tls, True)
    if xds is not None:
        return XdsTarget(xds, False)
    if cred.xds_tls:
        return XdsTarget(parse_host_ports(cred.xds_tls, "xds_tls in credential.json"), True)
    if cred.xds:
        return XdsTarget(parse_host_ports(cred.xds, "xds in credential.json"), False)
    raise ConfigError(
        "the control plane advertised no xDS address at join: pass --xds-tls HOST:PORT (its "
        "--xds-tls-addr) or --xds HOST:PORT"
    )


def reachable(advertised: str | None, server: str) -> str:
    """``advertised`` (HOST:PORT) with a wildcard host replaced by ``server``'s host."""
    if not advertised:
        return ""
    host, port = parse_host_port(
        advertised, "an xDS address the control plane advertised", min_port=1
    )
    try:
        wildcard = ipaddress.ip_address(host).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        host = urlsplit(server).hostname or host
    return host_port((host, port))


async def join_control_plane(
    server: str,
    token: str,
    host: str,
    *,
    ca_file: Path | str | None = None,
    xds: str | None = None,
    xds_tls: str | None = None,
) -> Credential:
    """Join with ``token`` (verifying the server first: ``ca_file``, else the token's CA
    fingerprint) and return the Credential to keep. ``xds``/``xds_tls`` (HOST:PORT, or
    several comma-separated: the control plane's replicas) override what the control plane
    advertises: ``xds`` alone means plaintext there. ``server`` may name several
    replicas, comma-separated: the host joins through the first and keeps them all."""
    servers = split_servers(server)
    for url in servers:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ConfigError(
                f"--server {url!r} is not an http(s) URL: write e.g. https://127.0.0.1:7070"
            )
    server, first = ",".join(servers), servers[0]
    parts = urlsplit(first)
    for value, option in ((xds, "--xds"), (xds_tls, "--xds-tls")):
        if value is not None:
            parse_host_ports(value, option)
    verify = None
    if ca_file is not None and is_tls(first):
        verify = client_context(await asyncio.to_thread(read_ca_file, ca_file))
    async with RegistryClient(server, verify=verify) as api:
        answer = await api.join(token, host)
        roots = answer.trust_bundle_pem
    plain = xds if xds is not None else reachable(answer.xds, first)
    tls = xds_tls if xds_tls is not None else ("" if xds is not None else None)
    if tls is None:
        tls = reachable(answer.xds_tls, first)
    if not plain and not tls:  # a control plane from before it advertised addresses
        plain = f"{parts.hostname}:{DEFAULT_XDS_PORT}"
    return Credential(
        server,
        answer.agent_id,
        answer.credential,
        host,
        plain,
        tls,
        roots.decode("ascii"),
    )
