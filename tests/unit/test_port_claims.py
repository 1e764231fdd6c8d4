"""Ports claimed by one process are not handed out by another (``PortClaims``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from gossamer.port_claims import PortClaims
from gossamer.ports import PortPicker

HOST = "127.0.0.78"  # (nothing else binds this simulated host)


def claims(tmp_path: Path, ttl: float = 600.0) -> PortClaims:
    found = PortClaims.private(tmp_path / "claims", ttl)
    assert found is not None
    return found


def test_a_port_claimed_lately_is_refused_and_a_lapsed_claim_is_taken(tmp_path: Path) -> None:
    mine = claims(tmp_path)
    assert mine.claim(25000)
    assert not mine.claim(25000)  # (also to the process that claimed it: asked twice)
    old = time.time() - 601
    os.utime(tmp_path / "claims" / "25000", (old, old))
    assert mine.claim(25000)
    assert not mine.claim(25000)


def test_two_pickers_sharing_claims_never_hand_out_one_port(tmp_path: Path) -> None:
    shared = claims(tmp_path)
    a, b = PortPicker(24000, 24100, 24000, shared), PortPicker(24000, 24100, 24000, shared)
    got = [p.pick(HOST) for _ in range(40) for p in (a, b)]
    assert len(set(got)) == 80, got
    # without claims, the same two hand out the same ports
    c, d = PortPicker(24000, 24100, 24000), PortPicker(24000, 24100, 24000)
    assert c.pick(HOST) == d.pick(HOST)


def test_when_every_free_port_was_claimed_the_bind_check_alone_decides(tmp_path: Path) -> None:
    shared = claims(tmp_path)
    for port in range(24200, 24203):
        assert shared.claim(port)
    assert PortPicker(24200, 24203, 24200, shared).pick(HOST) == 24200


PICKER = """
import sys
from pathlib import Path
from gossamer.port_claims import PortClaims
from gossamer.ports import PortPicker
claims = PortClaims.private(Path(sys.argv[1]))
assert claims is not None
picker = PortPicker(23000, 23400, 23000, claims)
print(" ".join(str(picker.pick("127.0.0.78")) for _ in range(90)))
"""


def test_processes_picking_at_once_from_one_start_get_distinct_ports(tmp_path: Path) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PICKER, str(tmp_path / "claims")],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    got = [int(port) for out in outs for port in out.split()]
    assert len(got) == 360 and len(set(got)) == 360, sorted(got)


def test_claims_are_kept_in_a_directory_of_this_user_alone(tmp_path: Path) -> None:
    made = PortClaims.private(tmp_path / "new" / "claims")
    assert made is not None
    assert (tmp_path / "new" / "claims").stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # (another user could claim every port, or remove ours)
    assert PortClaims.private(shared) is None
    (tmp_path / "link").symlink_to(tmp_path / "new" / "claims")
    assert PortClaims.private(tmp_path / "link") is None
    (tmp_path / "file").write_text("")
    assert PortClaims.private(tmp_path / "file") is None
