"""``bench/cli_startup.py`` runs end to end: each command once, a row per command with its
CPU against the bare interpreter's."""

from __future__ import annotations

import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_cli_startup_bench_prints_a_ratio_per_command() -> None:
    code, out = await run_bench("cli_startup.py", "--runs", "1", within=120)
    assert code == 0, out
    for command in ("python -c pass \\(baseline\\)", "gossamer --version", "gossamer agent --help"):
        assert re.search(rf"^{command} +[\d.]+ +[\d.]+ +[\d.]+x$", out, re.M), out
