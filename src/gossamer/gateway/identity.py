"""The gateway's mesh identity, ``spiffe://<td>/ns/<ns>/sa/<name>``, kept fresh by its host
side the way the agent keeps a service's: ``ServiceIdentity`` (key made here, CSR with the
gateway's credential, renewed at about half-life) publishes ``identity`` and
``trust-bundle`` into the runner's SDS cache, beside the certificates of
``Gateway.spec.tls``.

Like an agent, the gateway's host heartbeats (``POST /v1/agents/{id}/health``, every
``HEARTBEAT_S`` and at once when its Envoy's SDS ACKs change) with what its Envoy holds
(``secrets``, keyed by the gateway's ``ns/name``), so the liveness rule sees it alive and
the control plane sees its secret versions; the answer's ``caVersion`` renews the
certificate at once when the CA changed (root rotation), as the agent's does. It keeps
the hosts' long-poll through which the control plane asks for its Envoy's config dump
(``agent.dumps.HostRequests``,
``gossamer proxy-config gateway~ns~name``). It writes ``status.json`` in its state dir in
the agent's shapes (``IdentityStatus``; SDS as ``ProxySecrets.to_json``). A revoked
credential is fatal (``RefusedError``, ``revoked``: the runner drains and exits); any other
failure is retried with back-off while Envoy keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from gossamer.agent.client import RegistryClient
from gossamer.agent.connect import open_registry
from gossamer.agent.dumps import Admins, HostRequests
from gossamer.agent.identity.rotation import Identity, ServiceIdentity
from gossamer.agent.runner import CONTROL_PLANE_RETRY, HEARTBEAT_S
from gossamer.agent.status import IdentityStatus
from gossamer.envoy.sds.secrets import SecretCache, identity_secret, trust_bundle_secret
from gossamer.envoy.sds.server import ProxySecrets
from gossamer.errors import GossamerError, RefusedError
from gossamer.gateway.host import GatewayHost
from gossamer.translate.names import IDENTITY_SECRET, TRUST_BUNDLE_SECRET

log = logging.getLogger(__name__)

#: the secrets reported to the control plane (never the names of certificate files)
MESH_SECRETS = (IDENTITY_SECRET, TRUST_BUNDLE_SECRET)


@dataclass
class GatewayHostStatus:
    """``status.json`` of a gateway's state dir (the agent's field names where they match)."""

    pid: int
    agent_id: str
    host: str
    server: str
    gateway: str
    state: str = "running"
    control_plane_error: str | None = None
    control_plane_retry_in: float | None = None
    control_plane_refused: str | None = None
    #: its certificate, by ``NS/NAME`` (one entry: the gateway)
    identities: dict[str, IdentityStatus] = field(default_factory=dict)
    #: what its Envoy ACKed over SDS: {"acked": {secret: version}, "error", "streams"}
    sds: dict[str, Any] | None = None
    sds_socket: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["updated"] = time.time()
        return out


class GatewayIdentity:
    """``await run()`` until cancelled: certificate, heartbeat, status file."""

    def __init__(self, host: GatewayHost, secrets: SecretCache, owner: str, admins: Admins) -> None:
        self.host = host
        self._admins = admins
        self._secrets = secrets
        self._owner = owner
        cred = host.credential
        self.status = GatewayHostStatus(
            os.getpid(), cred.agent_id, cred.host, cred.server, host.gateway
        )
        self._identity_status = self.status.identities.setdefault(host.service, IdentityStatus())
        self._held: ProxySecrets | None = None
        self._reported: dict[str, dict[str, str]] = {}
        self._report = asyncio.Event()
        self._status_dirty = asyncio.Event()
        self.identity: ServiceIdentity | None = None

    # -- what the runner tells it ----------------------------------------------------------

    def sds_changed(self, record: ProxySecrets | None) -> None:
        """The gateway's Envoy ACKed or NACKed a secret (``record``: what it holds now)."""
        self._held = record
        self.status.sds = None if record is None else record.to_json()
        self._changed()
        held = self._holding()
        if held != self._reported:
            self._reported = held
            self._report.set()

    async def set_state(self, state: str) -> None:
        """``draining``, ``stopped``, ``failed``: written at once (the writer may be gone)."""
        self.status.state = state
        await self._flush()

    # -- the loops -------------------------------------------------------------------------

    async def run(self) -> None:
        """Raises ``RefusedError`` (revoked) when the operator revoked this host."""
        cred = self.host.credential
        async with open_registry(cred, self.host.state) as api:
            self.identity = ServiceIdentity(
                self.host.service,
                request=api.request_certificate,
                publish=self._publish,
                status=self._identity_status,
                changed=self._changed,
                keep=self.host.state.identity_file(self.host.service),
            )
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._write_status())
                    tg.create_task(self.identity.run())
                    tg.create_task(self._heartbeat(api))
                    # config dumps of its Envoy, asked through the host (agent.dumps)
                    tg.create_task(HostRequests(api, self._admins).run())
            except BaseExceptionGroup as group:
                raise group.exceptions[0] if len(group.exceptions) == 1 else group from None

    def _publish(self, identity: Identity) -> None:
        self._secrets.put(
            self._owner,
            identity_secret(identity.chain_pem, identity.key_pem, identity.serial),
            trust_bundle_secret(identity.trust_bundle_pem),
        )

    def _holding(self) -> dict[str, dict[str, str]]:
        """What the Envoy holds of the mesh secrets, while it has an SDS stream open."""
        record = self._held
        if record is None or record.streams <= 0:
            return {}
        acked = {n: v for n, v in record.acked.items() if n in MESH_SECRETS}
        return {self.host.gateway: acked} if acked else {}

    async def _heartbeat(self, api: RegistryClient) -> None:
        """Heartbeat with the SDS report: at once, on every change, and every HEARTBEAT_S."""
        backoff = CONTROL_PLANE_RETRY.retries()
        self._report.set()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_S):
                    await self._report.wait()
            self._report.clear()
            try:
                answer = await api.report_health({}, secrets=self._holding())
            except RefusedError as e:
                if e.revoked:
                    self.status.control_plane_error = str(e)
                    self.status.control_plane_refused = e.reason
                    self.status.state = "failed"
                    self._changed()
                    await self._flush()
                    raise
                await self._failed(e, backoff.next(), e.reason or "unauthorized")
                continue
            except GossamerError as e:
                await self._failed(e, backoff.next(), None)
                continue
            backoff.reset()
            self._heard_ca(answer.get("caVersion"))
            if self.status.control_plane_error is not None:
                log.info("control plane: reachable again")
            self.status.control_plane_error = None
            self.status.control_plane_refused = None
            self.status.control_plane_retry_in = None
            self._changed()

    def _heard_ca(self, version: object) -> None:
        """The heartbeat answer's ``caVersion``: renew at once if the certificate was
        issued under another (a root rotation moves on only once every host did;
        docs/security.md, 'Rotating the root')."""
        if self.identity is not None and isinstance(version, str) and version:
            self.identity.ca_version_seen(version)

    async def _failed(self, e: GossamerError, delay: float, refused: str | None) -> None:
        log.warning("control plane: %s; the gateway keeps serving (retrying in %.1f s)", e, delay)
        self.status.control_plane_error = str(e)
        self.status.control_plane_refused = refused
        self.status.control_plane_retry_in = round(delay, 2)
        self._changed()
        self._report.set()
        await asyncio.sleep(delay)

    # -- status file -----------------------------------------------------------------------

    def _changed(self) -> None:
        self._status_dirty.set()

    async def _write_status(self) -> None:
        while True:
            await self._status_dirty.wait()
            await self._flush()

    async def _flush(self) -> None:
        self._status_dirty.clear()
        await asyncio.to_thread(self.host.state.save_status, self.status.to_json())
