"""``Agent.run()``: the agent's whole life on a host.

Start: lock the state dir, check Envoy, give each workload stable ports, serve SDS on
``<state dir>/sds.sock``, adopt the Envoys a previous agent left running (same pid, start
time, bootstrap, and a live admin API), probe each app once, then in one task group:
register the workloads and report health changes (retried with back-off), keep each
service's certificate fresh and served over SDS (``agent/host_identity``), supervise each Envoy,
health-check each app.

Stop (SIGTERM/SIGINT): mark every workload draining and wait until the proxies ACKed,
drain the inbound listeners, wait ``drainSeconds``, stop the Envoys, exit. Detach (SIGHUP):
exit at once leaving the Envoys running for the next agent to adopt (an agent upgrade).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gossamer.agent.bootstrap import sidecar_bootstrap
from gossamer.agent.client import RegistryClient
from gossamer.agent.config import AgentConfig, to_manifest
from gossamer.agent.connect import XdsTarget, open_registry, xds_target
from gossamer.agent.denial_receiver import DenialReceiver
from gossamer.agent.denial_shipper import DenialShipper
from gossamer.agent.dumps import agent_requests
from gossamer.agent.envoy import Sidecar
from gossamer.agent.health import AppHealth
from gossamer.agent.host_identity import HostIdentities
from gossamer.agent.policy_checks import heard_checks
from gossamer.agent.process import terminate
from gossamer.agent.state import EnvoyRecord, StateDir
from gossamer.agent.status import AgentStatus, WorkloadStatus
from gossamer.agent.workload import WorkloadRunner
from gossamer.agent.xds_watch import XdsWatch
from gossamer.envoy.binary import check_version, find_envoy
from gossamer.errors import ConfigError, GossamerError, RefusedError, UntrustedServerError
from gossamer.polling import Backoff
from gossamer.ports import Address, free_port, is_free

log = logging.getLogger(__name__)

StopMode = Literal["stop", "detach"]
#: with no health change, health is sent again this often (keeps lastSeen fresh, notices a
#: revoked credential, repairs state a restored control plane lost)
HEARTBEAT_S = 15.0
#: how long the drain POST may wait for every affected proxy to ACK
DRAIN_ACK_TIMEOUT_S = 30.0
#: the wait before calling the control plane again after a failure
CONTROL_PLANE_RETRY = Backoff(initial=0.2, maximum=15.0)


@dataclass(frozen=True)
class AgentOptions:
    state_dir: Path
    config: AgentConfig
    host: str | None = None
    address: str | None = None
    envoy: str | None = None
    #: overrides the xDS addresses kept at join (several: the control plane's replicas)
    xds: tuple[Address, ...] | None = None
    #: the control plane's mTLS xDS addresses (``--xds-tls-addr``): the sidecars connect
    #: there with their workload certificates instead of to ``xds`` in plaintext
    xds_tls: tuple[Address, ...] | None = None


class Agent:
    def __init__(self, options: AgentOptions) -> None:
        self.options = options
        self.state = StateDir(options.state_dir)
        self._stop = asyncio.Event()
        self._mode: StopMode = "stop"
        self._fatal: GossamerError | None = None
        self._dirty = asyncio.Event()
        self._status_dirty = asyncio.Event()
        self._health: dict[str, str] = {}
        self._records: dict[str, EnvoyRecord] = {}
        self.workloads: list[WorkloadRunner] = []
        self.status: AgentStatus | None = None
        self.identities = HostIdentities(
            self.state,
            self.workloads,
            status=lambda: self.status,
            changed=self._changed,
            report=self._dirty.set,
        )
        # what the sidecars' RBAC denies, on the SDS socket, to the control plane's trail
        self.denials = DenialShipper(self._denials_changed)
        self.identities.sds.services.append(DenialReceiver(self.denials, self._nodes).add_to)

    def request_stop(self, mode: StopMode = "stop") -> None:
        log.info(
            "asked to %s", "stop (drain)" if mode == "stop" else "detach (Envoys keep running)"
        )
        self._mode = mode
        self._stop.set()

    async def run(self) -> None:
        """Run until asked to stop; raise the error that made it stop early, if any."""
        self.state.ensure()
        self.state.lock()
        try:
            await self._run()
        finally:
            await self.identities.sds.stop()
            self.state.unlock()

    async def _run(self) -> None:
        cred = self.state.credential()
        config = self.options.config
        host = self.options.host or config.host or cred.host
        if host != cred.host:
            raise ConfigError(
                f"host {host!r} differs from {cred.host!r}, the host this agent "
                "joined as; join again with --host or drop the host setting"
            )
        address = self.options.address or config.address
        if address is None:
            raise ConfigError(
                "the host's address is missing: pass --address (e.g. "
                "127.0.0.3) or set address in the workloads file"
            )
        binary = find_envoy(self.options.envoy)
        await check_version(binary)
        xds = xds_target(cred, xds=self.options.xds, xds_tls=self.options.xds_tls)
        self.status = AgentStatus(os.getpid(), cred.agent_id, host, cred.server)
        self._prepare(config, host, address, xds, binary)
        await self.identities.sds.start(self.state.sds_socket)  # (stopped in ``run``)
        self.status.sds_socket = str(self.state.sds_socket)
        await self._adopt()
        trackers = {w.key: w.tracker() for w in self.workloads}
        probes = [w.probe_once(trackers[w.key]) for w in self.workloads]
        for w, first in zip(self.workloads, await asyncio.gather(*probes), strict=True):
            self._health[w.key] = first or "unhealthy"
        async with open_registry(cred, self.state) as api:
            async with asyncio.TaskGroup() as tg:
                tasks = [
                    tg.create_task(self._write_status()),
                    tg.create_task(self._sync(api, host, address)),
                    tg.create_task(agent_requests(api, self.workloads, self._records)),
                    tg.create_task(self.denials.run(api)),
                    tg.create_task(XdsWatch(xds.addresses, who=f"host {host}").run()),
                ]
                for service in sorted({w.service_key for w in self.workloads}):
                    tasks.append(tg.create_task(self.identities.keep_fresh(api, service).run()))
                for w in self.workloads:
                    tasks.append(tg.create_task(w.supervise()))
                    tasks.append(tg.create_task(w.check_health(trackers[w.key], self._report)))
                self.status.state = "running"
                self._changed()
                await self._stop.wait()
                for task in tasks:
                    task.cancel()
            drain = self._fatal is None and self._mode == "stop"
            if drain:
                await self._drain(api)
        await self._finish(drain=drain)
        await self._flush_status()
        if self._fatal is not None:
            raise self._fatal

    # -- start ---------------------------------------------------------------------------

    def _prepare(
        self, config: AgentConfig, host: str, address: str, xds: XdsTarget, binary: str
    ) -> None:
        assert self.status is not None
        ports = self.state.ports()
        self._records = self.state.envoys()
        for w in config.workloads:
            key = f"{w.namespace}/{w.name}"
            known = ports.get(key, {})
            inbound = w.inboundPort or known.get("inbound") or free_port(address)
            record = self._records.get(key)
            admin = known.get("admin")
            if admin is None or (record is None and not is_free("127.0.0.1", admin)):
                admin = free_port("127.0.0.1")
            ports[key] = {"inbound": inbound, "admin": admin}
            status = WorkloadStatus(w.service, f"{address}:{inbound}")
            self.status.workloads[key] = status
            self.workloads.append(
                WorkloadRunner(
                    w,
                    address,
                    inbound,
                    sidecar_bootstrap(
                        w,
                        host=host,
                        xds=xds.addresses,
                        admin_port=admin,
                        sds_socket=self.state.sds_socket,
                        xds_tls=xds.tls,
                    ),
                    self.state.workload_dir(key),
                    binary,
                    config.drainSeconds,
                    status,
                    self._changed,
                    self._record,
                )
            )
        self.state.save_ports(ports)
        for runner in self.workloads:
            self.identities.secrets.assign(runner.bootstrap.node.id, runner.service_key)

    async def _adopt(self) -> None:
        """Keep the Envoys a previous agent left running; stop those no longer wanted."""
        wanted = {w.key: w for w in self.workloads}
        for key, record in list(self._records.items()):
            w = wanted.get(key)
            if w is not None and record.bootstrap == w.digest:
                sidecar = await Sidecar.adopt(key, record)
                if sidecar is not None:
                    adopted = "%s: adopted the running Envoy (pid %d, admin %s)"
                    log.info(adopted, key, record.pid, record.admin)
                    w.adopted(sidecar)
                    continue
                why = "it is gone or its admin API does not answer"
            else:
                why = "its workload was removed" if w is None else "its bootstrap changed"
            log.info("%s: not adopting Envoy pid %d: %s", key, record.pid, why)
            await terminate(record.pid, record.start_time, 10.0)
            del self._records[key]
        self.state.save_envoys(self._records)

    def _record(self, key: str, record: EnvoyRecord | None) -> None:
        if record is None:
            self._records.pop(key, None)
        else:
            self._records[key] = record
        self.state.save_envoys(self._records)

    # -- control plane -------------------------------------------------------------------

    def _report(self, name: str, health: AppHealth) -> None:
        self._health[name] = health
        self._dirty.set()

    async def _sync(self, api: RegistryClient, host: str, address: str) -> None:
        """Register the workloads, then send every health change; retry with back-off."""
        assert self.status is not None
        backoff = CONTROL_PLANE_RETRY.retries()
        self._dirty.set()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEARTBEAT_S):
                    await self._dirty.wait()
            self._dirty.clear()
            try:
                if not self.status.registered:
                    answer = await api.put_workloads(
                        [
                            to_manifest(
                                w.config,
                                host=host,
                                address=address,
                                inbound_port=w.inbound_port,
                                health=self._health[w.key],
                            )
                            for w in self.workloads
                        ]
                    )
                    self.status.registered = True
                    self.identities.registered.set()
                else:
                    answer = await api.report_health(
                        dict(self._health), secrets=self.identities.held()
                    )
                    self.identities.heard_ca(answer.get("caVersion"))
                heard_checks(answer, self.workloads)  # TrafficPolicy health checks
            except RefusedError as e:
                if e.revoked:  # the operator's kill switch: stop the Envoys and exit
                    self._fatal = e
                    self.status.control_plane_error = str(e)
                    self.status.control_plane_refused = e.reason
                    self._stop.set()
                    return
                await self._fail_static(e, backoff.next())
                continue
            except UntrustedServerError as e:
                await self._fail_static(e, backoff.next())
                continue
            except GossamerError as e:
                delay = backoff.next()
                log.warning("control plane: %s (retrying in %.1f s)", e, delay)
                self.status.control_plane_error = str(e)
                self.status.control_plane_retry_in = round(delay, 2)
                self._changed()
                self._dirty.set()
                await asyncio.sleep(delay)
                continue
            backoff.reset()
            if self.status.control_plane_refused is not None:
                log.info("control plane: this agent is known again; its workloads are registered")
            self.status.control_plane_error = None
            self.status.control_plane_refused = None
            self.status.control_plane_retry_in = None
            self._changed()

    async def _fail_static(self, e: RefusedError | UntrustedServerError, delay: float) -> None:
        """Refused for a reason other than revocation (most often ``unknown_agent``: the
        control plane lost or replaced its store, or runs with another ``--data-dir``), or
        the server failed verification against the kept trust bundle (a control plane on a
        new CA: another ``--data-dir``; or not the control plane at all). Nothing secret
        was sent to the latter, and it is not believed: the agent keeps its credential,
        trust bundle and certificates.

        The data plane never goes down because the control plane is wrong: the Envoys keep
        serving their last configuration (as Envoy itself does when xDS fails), the refusal
        is shown in the status and the log, and the agent retries with back-off. Once it is
        known again it registers its whole set of workloads again (``registered`` is reset),
        repairing what the control plane lost.
        """
        assert self.status is not None
        until = (
            "a control plane this host trusts answers"
            if isinstance(e, UntrustedServerError)
            else "the control plane knows this agent again"
        )
        message = f"{e}; its Envoys keep serving their last configuration until {until}"
        log.error("control plane: %s (retrying in %.1f s)", message, delay)
        self.status.registered = False
        self.status.control_plane_error = message
        self.status.control_plane_refused = (
            None if isinstance(e, UntrustedServerError) else e.reason or "unauthorized"
        )
        self.status.control_plane_retry_in = round(delay, 2)
        self._changed()
        self._dirty.set()
        await asyncio.sleep(delay)

    # -- stop ----------------------------------------------------------------------------

    async def _drain(self, api: RegistryClient) -> None:
        """Tell the control plane every workload is draining and wait until the proxies
        ACKed (so none sends new requests here); the Envoys drain next, in ``_finish``."""
        assert self.status is not None
        self.status.state = "draining"
        self._changed()
        draining = {w.key: "draining" for w in self.workloads}
        log.info("draining: marking %d workload(s) draining", len(draining))
        if self.workloads:
            try:
                await api.report_health(draining, wait=True, timeout=DRAIN_ACK_TIMEOUT_S)
            except GossamerError as e:
                self.status.control_plane_error = f"while draining: {e}"
                self._changed()

    async def _finish(self, *, drain: bool) -> None:
        """Stop the Envoys (with ``drain``: drain each, wait ``drainSeconds``, then stop),
        or, detaching, leave them running for the next agent."""
        assert self.status is not None
        if self._mode == "detach" and self._fatal is None:
            self.status.state = "detached"
            self._changed()
            return
        log.info("stopping %d Envoy(s)", len(self.workloads))
        async with asyncio.TaskGroup() as tg:
            for w in self.workloads:
                tg.create_task(w.stop_envoy(drain=drain))
        self.status.state = "failed" if self._fatal else "stopped"
        self.status.error = str(self._fatal) if self._fatal else None
        self._changed()

    # -- status file ---------------------------------------------------------------------

    def _changed(self) -> None:
        self._status_dirty.set()

    def _nodes(self) -> dict[str, str]:
        return {w.bootstrap.node.id: w.key for w in self.workloads}

    def _denials_changed(self, counts: dict[str, Any]) -> None:
        if self.status is not None:
            self.status.denials = counts
            self._changed()

    async def _write_status(self) -> None:
        while True:
            await self._status_dirty.wait()
            await self._flush_status()

    async def _flush_status(self) -> None:
        self._status_dirty.clear()
        if self.status is not None:
            await asyncio.to_thread(self.state.save_status, self.status.to_json())


def install_signal_handlers(agent: Agent) -> None:
    """SIGTERM/SIGINT: drain and stop; SIGHUP: detach (leave the Envoys for the next agent)."""
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, agent.request_stop, "stop")
    loop.add_signal_handler(signal.SIGINT, agent.request_stop, "stop")
    loop.add_signal_handler(signal.SIGHUP, agent.request_stop, "detach")
