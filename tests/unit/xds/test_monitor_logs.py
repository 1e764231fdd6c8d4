"""What the monitor logs: stream open/close at INFO, a NACK once at WARNING (not each
back-off retry of the same content), again after an ACK."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry
from xds_fakes import C, FakeEnvoy, snapshot

from gossamer.types import ProxyIdentity
from gossamer.xds.monitor import XdsMonitor

PROXY = ProxyIdentity("gateway", "edge", "public")
LOGGER = "gossamer.xds.monitor"


def test_stream_open_and_close_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    monitor = XdsMonitor(CollectorRegistry())
    caplog.set_level(logging.INFO, LOGGER)
    monitor.opened("s1", PROXY, FakeEnvoy(delta=True).state, "delta", None)
    monitor.closed("s1")
    monitor.close()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "xDS stream opened: gateway~edge~public (delta)"),
        ("INFO", "xDS stream closed: gateway~edge~public (delta)"),
    ]


def test_a_nack_is_logged_once_with_node_type_and_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = XdsMonitor(CollectorRegistry())
    env = FakeEnvoy(delta=False)
    monitor.opened("s1", PROXY, env.state, "sotw", None)
    snap = snapshot({"c1": 1})
    env.request(C, snap=snap)
    caplog.set_level(logging.WARNING, LOGGER)

    out = env.push(snap)
    assert out is not None
    monitor.request("s1", env.nack(out, "bad cluster c1"))
    env.now += 60  # past the back-off: the same content is sent again and rejected again
    again = env.push(snap)
    assert again is not None
    monitor.request("s1", env.nack(again, "bad cluster c1 (again)"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"gateway~edge~public rejected clusters version {out.version}: bad cluster c1"
    ]

    fixed = snapshot({"c1": 2})
    accepted = env.push(fixed)
    assert accepted is not None
    monitor.request("s1", env.ack(accepted))
    broken = env.push(snap)  # the content rejected before, after an ACK: logged again
    assert broken is not None
    monitor.request("s1", env.nack(broken, "bad cluster c1"))
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
    monitor.close()
