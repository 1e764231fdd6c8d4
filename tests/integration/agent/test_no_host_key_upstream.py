"""No private key of a host appears in anything the control plane stores or receives
(issue 9, "Done when").

The real flow, in one process with the control plane: agents join (join tokens over the
API), register workloads, their sidecars get config over xDS and certificates for keys the
agents made (CSRs over the API), and every certificate is renewed at least once (1-minute
TTL: a new key each time). Meanwhile ``recording_control_plane_io`` keeps every byte the
REST API read (after TLS, before HTTP parsing) and every xDS message read and written.
Then every key the agents ever held (their state dirs, watched throughout) is looked for,
in all its spellings (``key_material.KeyForms``), in: those bytes, every file of the
control plane's data dir (the SQLite database and its WAL included), and both sidecars'
config dumps. None may be found. A control sample plants a key once in each kind of place
(a real API request, a file in the data dir, a config dump) and the same scan must find it.
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

import httpx
import pytest

from gossamer.polling import wait_until
from gossamer.testing.controlplane import api_client
from gossamer.testing.wire_recorder import recording_control_plane_io

from .key_material import KeyForms, files_under, scan
from .mtls_mesh import REVIEWS_ID, Mesh, services, two_hosts, wait_served

pytestmark = [
    pytest.mark.integration,
    pytest.mark.asyncio,
    pytest.mark.slow,
    pytest.mark.timeout(300),
]

WORKLOADS = (("web", "default/web-1"), ("reviews", "default/reviews-1"))


def host_keys(mesh: Mesh, seen: dict[bytes, str]) -> None:
    """Add every private key now in either agent's state dir (``identity/*.json``)."""
    for handle in (mesh.web, mesh.reviews):
        for path in sorted((handle.state_dir / "identity").glob("*.json")):
            try:
                kept = json.loads(path.read_text())
            except (OSError, ValueError):  # being replaced right now: the next look sees it
                continue
            pem = kept.get("privateKey", "").encode()
            if pem and pem not in seen:
                seen[pem] = f"{handle.host}/{path.name}#{len(seen)}"


def serials(mesh: Mesh) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for (_, key), handle in zip(WORKLOADS, (mesh.web, mesh.reviews), strict=True):
        sds = handle.status()["workloads"][key].get("sds") or {}
        out[key] = sds.get("acked", {}).get("identity")
    return out


async def config_dumps(mesh: Mesh) -> dict[str, bytes]:
    out = {}
    for (_, key), handle in zip(WORKLOADS, (mesh.web, mesh.reviews), strict=True):
        async with mesh.admin(handle, key) as envoy:
            out[f"config_dump {key}"] = json.dumps(await envoy.config_dump()).encode()
    return out


async def test_no_host_private_key_reaches_the_control_plane(tmp_path: Path) -> None:
    keys: dict[bytes, str] = {}
    with recording_control_plane_io() as io:
        manifests = services(mesh="mode: strict, certificateTTL: 1m")
        async with two_hosts(tmp_path, manifests) as mesh:
            await wait_served(mesh)
            host_keys(mesh, keys)
            first = serials(mesh)
            seen: dict[str, set[str | None]] = {k: {v} for k, v in first.items()}

            def renewed() -> bool:
                host_keys(mesh, keys)
                for key, serial in serials(mesh).items():
                    seen[key].add(serial)
                return all(len({s for s in v if s}) >= 2 for v in seen.values())

            # renewal at about half the 1-minute lifetime, with a new key
            await wait_until(renewed, timeout=120, interval=0.5, what="every certificate renewed")
            dumps = await config_dumps(mesh)
            real_api = len(io.api_received)
            places = {
                "REST API requests received": io.api_bytes(),
                "xDS requests received": b"".join(io.xds_received),
                "xDS responses sent": b"".join(io.xds_sent),
                **files_under(tmp_path / "cp"),
                **dumps,
            }
            forms = [KeyForms.of(name, pem) for pem, name in keys.items()]
            print(
                f"{len(forms)} host keys; scanned {len(io.api_received)} API chunks "
                f"({len(places['REST API requests received'])} bytes), "
                f"{len(io.xds_received)} xDS requests, {len(io.xds_sent)} xDS responses, "
                f"{len(places) - 5} data-dir files, 2 config dumps"
            )
            # the flow ran as claimed: two hosts, each renewed with a new key ...
            assert len(forms) >= 4, sorted(keys.values())
            # ... and the recordings are of it: the CSRs and joins went through the API,
            # and xDS carried each caller's check of the callee's SPIFFE id
            api = places["REST API requests received"]
            assert api.count(b"CERTIFICATE REQUEST") >= 4 and b"/v1/agents/join" in api
            assert REVIEWS_ID.encode() in places["xDS responses sent"]
            # (the dumps hold the SDS secrets too: each sidecar's certificate chain)
            # (base64 in the JSON, as Envoy shows inline bytes)
            pem_head = base64.b64encode(b"-----BEGIN CERTIFICATE-----")
            assert all(pem_head in v for v in dumps.values()), list(dumps)
            assert REVIEWS_ID.encode() in dumps["config_dump default/web-1"]
            assert scan(forms, places) == {}

            # control sample: the same scan finds a key planted once in each kind of place
            planted = forms[0]
            pem = next(p for p, n in keys.items() if n == planted.name)
            async with api_client(mesh.app, verify=False) as client:
                # whatever it answers: the bytes were received
                with contextlib.suppress(httpx.HTTPError):
                    await client.post("/v1/validate", json={"note": pem.decode()})
            (tmp_path / "cp" / "planted.bin").write_bytes(
                b"\x00junk" + planted.forms["der-sec1"] + b"junk"
            )
            control = {
                "REST API requests received": io.api_bytes(real_api),
                **files_under(tmp_path / "cp"),
                "config_dump (planted)": dumps[next(iter(dumps))]
                + json.dumps({"inlineBytes": base64.b64encode(b"x" + pem).decode()}).encode(),
            }
            found = scan([planted], control)
            assert "pem" in " ".join(found.get("REST API requests received", [])), found
            assert str(tmp_path / "cp" / "planted.bin") in found, found
            assert "config_dump (planted)" in found, found
            assert len(found) == 3, found
