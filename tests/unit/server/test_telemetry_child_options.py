"""The supervised telemetry child gets the control plane's trace and OTLP options
(``--telemetry-trace-decision-wait``, ``--telemetry-otlp``, ``--telemetry-otlp-insecure``);
a bad value is refused naming the control plane's flag before anything is made."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI

from gossamer.errors import ConfigError
from gossamer.server.telemetry_child import TelemetrySettings, addresses, open_telemetry

pytestmark = pytest.mark.asyncio


async def test_the_child_is_given_the_trace_and_otlp_options(tmp_path: Path) -> None:
    settings = TelemetrySettings(
        trace_decision_wait_s=4.0, otlp_endpoint="127.0.0.1:4317", otlp_insecure=True
    )
    t = await open_telemetry(settings, tmp_path, FastAPI(), None)
    assert t.child is not None
    argv = t.child.argv()
    assert argv[argv.index("--trace-decision-wait") + 1] == "4"
    assert argv[argv.index("--otlp-endpoint") + 1] == "127.0.0.1:4317"
    assert "--otlp-insecure" in argv
    (tmp_path / "p").mkdir()
    plain = await open_telemetry(TelemetrySettings(), tmp_path / "p", FastAPI(), None)
    assert plain.child is not None
    assert not {"--trace-decision-wait", "--otlp-endpoint"} & set(plain.child.argv())


@pytest.mark.parametrize(
    ("settings", "flag"),
    [
        (TelemetrySettings(otlp_endpoint="collector"), "--telemetry-otlp"),
        (TelemetrySettings(otlp_endpoint="c:99999"), "--telemetry-otlp"),
        (TelemetrySettings(trace_decision_wait_s=-1), "--telemetry-trace-decision-wait"),
    ],
)
async def test_a_bad_option_is_refused_naming_it(
    tmp_path: Path, settings: TelemetrySettings, flag: str
) -> None:
    with pytest.raises(ConfigError, match=flag):
        addresses(settings, reserve=False)
    with pytest.raises(ConfigError, match=flag):
        await open_telemetry(settings, tmp_path, FastAPI(), None)
    assert not (tmp_path / "telemetry.token").exists()
