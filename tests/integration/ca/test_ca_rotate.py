"""``gossamer ca rotate`` under continuous traffic through real agents and Envoys (web's
sidecar -> reviews' STRICT sidecar, 1-minute certificates): it runs to completion, no
request fails, each Envoy's trust bundle holds both roots during the rotation and only the
new one after (Envoy's admin ``/certs``), every workload certificate then chains to the new
root, and a new mTLS connection with web's current certificate and bundle to reviews'
sidecar succeeds in every phase."""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from tests.integration.agent.agents import GOSSAMER, PACED, AgentHandle, Load
from tests.integration.agent.mtls_mesh import WEB_ID, Mesh, services, two_hosts, wait_served
from tests.unit.ca.certs import verify_client

from gossamer.ca.material import signed_by
from gossamer.ca.rotation import Phase
from gossamer.polling import wait_until
from gossamer.server.app import ControlPlaneApp
from gossamer.testing.controlplane import ca_file, operator_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.asyncio,
    pytest.mark.timeout(500),
]

SIDECARS = {"web": "default/web-1", "reviews": "default/reviews-1"}


async def _cli(app: ControlPlaneApp, *args: str, timeout: float = 60) -> tuple[int, str]:  # noqa: ASYNC109
    """``gossamer ARGS --server <app>`` as an operator who keeps the roots in a CA file."""
    env = {**operator_env(app), "GOSSAMER_CA_FILE": str(ca_file(app))}
    env |= {"COLUMNS": "250", "NO_COLOR": "1"}
    proc = await asyncio.create_subprocess_exec(
        GOSSAMER, *args, "--server", app.api_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
    )  # fmt: skip
    async with asyncio.timeout(timeout):
        out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _certs(handle: AgentHandle, key: str) -> dict[str, Any]:
    """Envoy's ``/certs``: the CA certificates and chains its TLS contexts hold now."""
    admin = handle.status()["workloads"][key]["envoy"]["admin"]
    async with httpx.AsyncClient(timeout=5, trust_env=False) as client:
        r = await client.get(f"http://{admin}/certs")
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def _ca_serials(certs: dict[str, Any]) -> set[frozenset[str]]:
    """The set of CA serials of each TLS context that validates peers."""
    return {
        frozenset(c["serial_number"].lower().lstrip("0") for c in ctx.get("ca_cert", []))
        for ctx in certs.get("certificates", [])
        if ctx.get("ca_cert")
    }


def _leaf_serials(certs: dict[str, Any]) -> set[str]:
    return {
        ctx["cert_chain"][0]["serial_number"].lower().lstrip("0")
        for ctx in certs.get("certificates", [])
        if ctx.get("cert_chain")
    }


def _serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


@dataclass
class Probe:
    """New mTLS connections straight to reviews' sidecar, each with web's certificate and
    trust bundle as its agent keeps them now (a new handshake each time, in every phase:
    Envoy's own connection between the sidecars is long-lived and multiplexed)."""

    mesh: Mesh
    ok: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)

    def _context(self) -> ssl.SSLContext:
        kept = json.loads(_kept(self.mesh.web, "web").read_text())
        ctx = ssl.create_default_context(cadata=kept["trustBundle"])
        ctx.check_hostname = False  # (workload certificates name no host)
        with tempfile.TemporaryDirectory() as tmp:
            chain, key = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
            chain.write_text(kept["certificateChain"])
            key.write_text(kept["privateKey"])
            ctx.load_cert_chain(chain, key)
        return ctx

    async def once(self, phase: str) -> None:
        ctx = await asyncio.to_thread(self._context)
        async with httpx.AsyncClient(timeout=5, trust_env=False, verify=ctx) as client:
            try:
                r = await client.get(f"https://{self.mesh.inbound}/probe")
            except (httpx.HTTPError, ssl.SSLError) as e:  # (TLS 1.3 alerts come raw)
                self.failed.append(f"{phase}: {e!r}")
                return
        if r.status_code == 200:
            self.ok[phase] = self.ok.get(phase, 0) + 1
        else:
            self.failed.append(f"{phase}: {r.status_code} {r.text[:100]}")


def _kept(handle: AgentHandle, service: str) -> Path:
    return handle.state_dir / "identity" / f"default%2F{service}.json"


async def test_ca_rotate_under_traffic_fails_no_request(tmp_path: Path) -> None:
    manifests = services("strict", mesh="certificateTTL: 1m")
    async with two_hosts(tmp_path, manifests) as mesh:
        app = mesh.app
        assert app.ca is not None
        await wait_served(mesh)
        (old_root,) = x509.load_pem_x509_certificates(app.ca.trust_bundle_pem())
        handles = {"web": mesh.web, "reviews": mesh.reviews}
        both_seen: dict[str, bool] = dict.fromkeys(SIDECARS, False)
        watching = asyncio.Event()
        probe = Probe(mesh)

        async def watch() -> None:
            """Each Envoy's bundle as it changes; a new mTLS connection in every phase."""
            while not watching.is_set():  # bounded by the CLI's own timeout below
                for name, key in SIDECARS.items():
                    if any(len(s) == 2 for s in _ca_serials(await _certs(handles[name], key))):
                        both_seen[name] = True
                state = app.ca.rotation.state if app.ca else None
                await probe.once(str(state.phase) if state else "before")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await watching.wait()

        started = time.monotonic()
        load = Load(f"{mesh.outbound}/load", max_requests=100_000, max_seconds=400, pace=PACED)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(load.run())
            await wait_until(
                lambda: WEB_ID in mesh.xfcc_seen(), timeout=60, what="mTLS web->reviews"
            )
            tg.create_task(watch())
            code, out = await _cli(app, "ca", "rotate", "--timeout", "300", timeout=330)
            watching.set()
            load.stop()
        took = time.monotonic() - started
        print(out)
        assert code == 0, out
        for line in (
            "root rotation started",
            "phase trusting",
            "proxies have the trust bundle with both roots",
            "phase issuing",
            "phase retiring",
            "root rotation done",
        ):
            assert line in out, (line, out)

        sent, failed = load.ok + len(load.failed), load.failed
        print(
            f"ca rotate under load: sent {sent}, failed {len(failed)}, {took:.1f} s; new "
            f"mTLS connections per phase {probe.ok}, failed {len(probe.failed)}; web's "
            f"sidecar made {await mesh.caller_handshakes()} handshake(s) to reviews'"
        )
        assert failed == [], failed[:5]
        assert probe.failed == [], probe.failed[:5]
        assert sent > 100
        for phase in (Phase.TRUSTING, Phase.ISSUING, Phase.RETIRING):
            assert probe.ok.get(phase, 0) > 0, (phase, probe.ok)

        (new_root,) = x509.load_pem_x509_certificates(app.ca.trust_bundle_pem())
        assert new_root != old_root
        assert all(both_seen.values()), f"an Envoy never held both roots: {both_seen}"
        for name, key in SIDECARS.items():
            certs = await _certs(handles[name], key)
            assert _ca_serials(certs) == {frozenset({_serial(new_root)})}, (name, certs)
            kept = json.loads(_kept(handles[name], name).read_text())
            chain = kept["certificateChain"].encode()
            leaf = x509.load_pem_x509_certificate(chain)
            assert signed_by(leaf, new_root), name
            verify_client(chain, app.ca.trust_bundle_pem())
            assert _leaf_serials(certs) == {_serial(leaf)}, (name, certs)
        code, status = await _cli(app, "proxy-status", "-o", "json")
        assert code == 0, status
        by_node = {p["nodeId"]: p for p in json.loads(status)}
        for name in SIDECARS:
            sds = by_node[f"sidecar~default~{name}-1"]["sds"]
            assert sds.get("identity") and sds.get("trust-bundle"), by_node
