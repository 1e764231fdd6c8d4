"""The gateway's credential: how ``gossamer gateway --token T --state-dir DIR`` becomes a
host of the mesh, like an agent.

On first start the join token (``gossamer token create --gateway NS/NAME``) is exchanged
once for a host credential (``agent.connect.join_control_plane``: the server is verified
before the token is sent, exactly as ``gossamer agent join`` does; the xDS addresses the
control plane advertises are kept with it), checked to be for this very gateway
(the agent's record says ``scope.gateway``), and kept in the state dir with the agent's
own ``StateDir`` (``credential.json``, 0600 in a 0700 dir) beside ``gateway.json`` (which
gateway it is for). Later starts use the kept credential: a ``--token`` given again is
ignored with one line (a token is single use); a state dir holding another gateway's
credential is an error.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gossamer.agent.connect import join_control_plane, open_registry
from gossamer.agent.state import CREDENTIAL, Credential, StateDir, read_json, write_json
from gossamer.errors import ConfigError

#: which gateway (``ns/name``) the credential in the state dir is for
GATEWAY_FILE = "gateway.json"


@dataclass(frozen=True)
class GatewayHost:
    """A gateway holding a credential: its state dir, credential and ``ns/name``."""

    state: StateDir
    credential: Credential
    gateway: str

    @property
    def service(self) -> str:
        """What its certificate is asked for (``NS/NAME``: gateways are named like services)."""
        return self.gateway


def default_host(namespace: str, name: str) -> str:
    """The host name a gateway joins as unless told: ``gw-<name>-<machine>`` (unique per
    machine: two replicas on two machines are two hosts; cut to 63 characters)."""
    machine = socket.gethostname().split(".")[0].lower()
    text = f"gw-{name}" if namespace == "default" else f"gw-{namespace}-{name}"
    clean = "".join(c if c.isalnum() or c == "-" else "-" for c in f"{text}-{machine}")
    return clean[:63].strip("-")


def kept(state: StateDir, gateway: str) -> GatewayHost | None:
    """The credential kept in ``state`` for ``gateway``; None if there is none;
    ``ConfigError`` if it is another gateway's (or an agent's)."""
    if not (state.path / CREDENTIAL).exists():
        return None
    record = read_json(state.path / GATEWAY_FILE)
    holder = record.get("gateway") if isinstance(record, dict) else None
    if holder != gateway:
        what = f"gateway {holder}" if holder else "an agent (no gateway.json)"
        raise ConfigError(
            f"--state-dir {state.path} holds the credential of {what}, not of gateway "
            f"{gateway}; give each gateway its own --state-dir"
        )
    return GatewayHost(state, state.credential(), gateway)


async def obtain(
    state_dir: Path,
    *,
    gateway: str,
    token: str | None,
    server: str,
    host: str,
    say: Callable[[str], None],
    ca_file: Path | None = None,
) -> GatewayHost | None:
    """The gateway's credential: the kept one, else one joined for with ``token``; None
    without either (the gateway then runs without a mesh identity, as before)."""
    state = StateDir(state_dir)
    state.ensure()
    found = kept(state, gateway)
    if found is not None:
        if token:
            say(
                f"--token ignored: {state_dir} already holds the credential of gateway "
                f"{gateway} (agent {found.credential.agent_id}); a join token is used once"
            )
        return found
    if not token:
        return None
    # verified against the token's CA fingerprint before the token is sent (agent.connect)
    credential = await join_control_plane(server, token, host, ca_file=ca_file)
    agent_id = credential.agent_id
    async with open_registry(credential) as api:
        record = await api.whoami()
    scope = record.get("scope")
    granted = scope.get("gateway") if isinstance(scope, dict) else None
    if granted != gateway:
        allowed = f"gateway {granted}" if granted else "services, not a gateway"
        raise ConfigError(
            f"the join token is for {allowed}, not gateway {gateway}; nothing was kept. "
            f"Revoke the host it joined as (`gossamer agents revoke {host}`) and create a "
            f"token with `gossamer token create --gateway {gateway}`"
        )
    write_json(state.path / GATEWAY_FILE, {"gateway": gateway})
    state.save_credential(credential)
    say(f"joined as agent {agent_id} (host {host}); credential in {state_dir / CREDENTIAL}")
    return GatewayHost(state, credential, gateway)
