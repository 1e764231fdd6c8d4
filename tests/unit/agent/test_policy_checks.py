"""Which check a workload runs (its file's, its TrafficPolicy's, the default), how a
policy's check converts, and a running checker switching checks against a real app."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from envoy.config.bootstrap.v3 import bootstrap_pb2

from gossamer.agent.config import HealthCheck, WorkloadConfig
from gossamer.agent.health import AppHealth
from gossamer.agent.policy_checks import (
    EffectiveCheck,
    effective_check,
    heard_checks,
    policy_check,
)
from gossamer.agent.status import WorkloadStatus
from gossamer.agent.workload import WorkloadRunner
from gossamer.polling import wait_until
from gossamer.testing.backends import HttpBackend

POLICY = {
    "http": {"path": "/status/500"},
    "interval": "100ms",
    "timeout": "100ms",
    "unhealthyThreshold": 3,
    "healthyThreshold": 2,
    "trafficPolicy": "default/catalog",
}


def test_a_policy_check_converts_to_the_agents() -> None:
    check = policy_check(POLICY)
    assert (check.type, check.path) == ("http", "/status/500")
    assert check.interval == check.timeout == timedelta(milliseconds=100)
    assert (check.unhealthyThreshold, check.healthyThreshold) == (3, 2)
    tcp = policy_check({"interval": "3s"})
    assert (tcp.type, tcp.interval, tcp.timeout) == (
        "tcp",
        timedelta(seconds=3),
        timedelta(seconds=1),
    )
    with pytest.raises(ValueError, match="timeout must not be longer than interval"):
        policy_check({"interval": "1s", "timeout": "2s"})


def _config(**extra: Any) -> WorkloadConfig:
    return WorkloadConfig.model_validate(
        {"name": "catalog-1", "service": "catalog", "appPort": 8080, **extra}
    )


def test_the_file_wins_then_the_policy_then_the_default() -> None:
    policy = EffectiveCheck(policy_check(POLICY), "policy", "default/catalog")
    assert effective_check(_config(), policy) is policy
    assert effective_check(_config(), None) == EffectiveCheck(HealthCheck(), "default")
    own = _config(healthCheck={"type": "http", "path": "/own"})
    assert effective_check(own, policy) == EffectiveCheck(own.healthCheck, "file")  # type: ignore[arg-type]
    shown = policy.to_json()
    assert shown["source"] == "policy" and shown["trafficPolicy"] == "default/catalog"
    assert shown["path"] == "/status/500" and shown["interval"] == "100ms"


def _runner(tmp_path: Path, app: HttpBackend, **extra: Any) -> WorkloadRunner:
    config = _config(appAddress=app.address[0], appPort=app.address[1], **extra)
    return WorkloadRunner(
        config,
        "127.0.0.1",
        1,
        bootstrap_pb2.Bootstrap(),
        tmp_path,
        "envoy",
        0,
        WorkloadStatus("catalog", "127.0.0.1:1"),
        lambda: None,
        lambda key, record: None,
    )


@pytest.mark.asyncio
async def test_a_running_checker_takes_the_policy_check_and_gives_it_back(
    tmp_path: Path,
) -> None:
    async with HttpBackend("catalog-app") as app:
        runner = _runner(tmp_path, app)
        pinned = _runner(tmp_path, app, healthCheck={"type": "tcp", "interval": "1s"})
        reports: list[tuple[str, AppHealth]] = []
        tracker = runner.tracker()
        assert await runner.probe_once(tracker) == "healthy"  # default: TCP connect
        assert runner.status.health_check is not None
        assert runner.status.health_check["source"] == "default"
        checker = asyncio.create_task(
            runner.check_health(tracker, lambda key, h: reports.append((key, h)))
        )
        try:
            heard_checks({"healthChecks": {"default/catalog-1": POLICY}}, [runner, pinned])
            assert runner.check.source == "policy"
            assert pinned.check.source == "file"  # the operator's own check wins
            # another question (GET /status/500, not a connect): its first answer decides
            # at once, though the default's 2 s interval had not run out
            await wait_until(
                lambda: reports == [("default/catalog-1", "unhealthy")],
                timeout=5,
                what="unhealthy by the policy's check",
            )
            assert runner.status.health_error == "GET /status/500 answered 500"

            # an older control plane says nothing: nothing changes
            heard_checks({"caVersion": "x"}, [runner])
            assert runner.check.source == "policy"
            # a check the agent cannot run is ignored; the workload keeps its check
            heard_checks({"healthChecks": {"default/catalog-1": {"timeout": "9s"}}}, [runner])
            assert runner.check.source == "policy"

            # the policy is gone: the default (a connect) again
            heard_checks({"healthChecks": {}}, [runner])
            assert runner.check == EffectiveCheck(HealthCheck(), "default")
            await wait_until(
                lambda: reports[-1] == ("default/catalog-1", "healthy"),
                timeout=5,
                what="healthy by the default check",
            )
            assert tracker.unhealthy_threshold == 2 and tracker.healthy_threshold == 1
        finally:
            checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checker
