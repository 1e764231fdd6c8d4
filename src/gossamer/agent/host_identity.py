"""The host's identities and what its Envoys hold of them.

One ``ServiceIdentity`` per service the host serves (``agent/identity/rotation.py``) keeps
that service's certificate fresh and publishes it to the host's SDS server as the
``identity`` and ``trust-bundle`` secrets. The SDS server's record of what each Envoy ACKed
is shown in its workload's status and reported to the control plane with the next
heartbeat, at once when it changes: mTLS readiness and a root rotation wait on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from gossamer.agent.client import RegistryClient
from gossamer.agent.identity.rotation import Identity, ServiceIdentity
from gossamer.agent.state import StateDir
from gossamer.agent.status import AgentStatus, IdentityStatus
from gossamer.agent.workload import WorkloadRunner
from gossamer.envoy.sds.secrets import SecretCache, identity_secret, trust_bundle_secret
from gossamer.envoy.sds.server import SdsServer


class HostIdentities:
    """The identities of one agent's workloads, served over ``sds``; ``status`` gives the
    agent's status once it exists, ``changed`` marks it for writing, ``report`` asks for a
    heartbeat now."""

    def __init__(
        self,
        state: StateDir,
        workloads: Sequence[WorkloadRunner],
        *,
        status: Callable[[], AgentStatus | None],
        changed: Callable[[], None],
        report: Callable[[], None],
    ) -> None:
        self._state = state
        self._workloads = workloads
        self._status = status
        self._changed = changed
        self._report = report
        self.secrets = SecretCache()
        self.sds = SdsServer(self.secrets, changed=self._sds_changed)
        #: set once the workloads are registered (the CA signs only for those)
        self.registered = asyncio.Event()
        self._identities: list[ServiceIdentity] = []
        self._reported: dict[str, dict[str, str]] = {}

    def keep_fresh(self, api: RegistryClient, service: str) -> ServiceIdentity:
        """The loop that keeps ``service``'s certificate fresh and serves it over SDS."""
        status = self._status()
        assert status is not None
        kept = status.identities.setdefault(service, IdentityStatus())

        def publish(identity: Identity) -> None:
            self.secrets.put(
                service,
                identity_secret(identity.chain_pem, identity.key_pem, identity.serial),
                trust_bundle_secret(identity.trust_bundle_pem),
            )

        identity = ServiceIdentity(
            service,
            request=api.request_certificate,
            publish=publish,
            status=kept,
            changed=self._changed,
            keep=self._state.identity_file(service),
            registered=self.registered,
        )
        self._identities.append(identity)
        return identity

    def heard_ca(self, version: object) -> None:
        """The heartbeat answer's ``caVersion``: each identity renews at once if its
        certificate was issued under another (root rotation, docs/agent-protocol.md)."""
        if isinstance(version, str) and version:
            for identity in self._identities:
                identity.ca_version_seen(version)

    def held(self) -> dict[str, dict[str, str]]:
        """Per workload, the secrets its Envoy ACKed over SDS and holds now (it has a
        stream open: an Envoy that went away holds nothing)."""
        held = {}
        for w in self._workloads:
            record = self.sds.proxies.get(w.bootstrap.node.id)
            if record is not None and record.streams > 0 and record.acked:
                held[w.key] = dict(record.acked)
        return held

    def _sds_changed(self) -> None:
        """An Envoy ACKed or NACKed a secret: show it in its workload's status, and tell
        the control plane (with the next heartbeat, at once: mTLS readiness waits on it)."""
        status = self._status()
        if status is None:
            return
        for w in self._workloads:
            record = self.sds.proxies.get(w.bootstrap.node.id)
            if record is not None:
                status.workloads[w.key].sds = record.to_json()
        self._changed()
        held = self.held()
        if held != self._reported:
            self._reported = held
            self._report()
