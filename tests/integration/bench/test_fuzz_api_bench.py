"""``bench/fuzz_api.py`` at a small size: schemathesis sends valid and schema-breaking
requests to every operation of a real control plane's REST API with an operator token.
Fails on any answer of 500 or more, a request with no answer, or a control plane that is
not ready afterwards."""

from __future__ import annotations

import asyncio
import re

import pytest
from tests.integration.bench.bench_run import run_bench

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_no_request_to_the_api_fails_the_server() -> None:
    code, out = asyncio.run(
        run_bench("fuzz_api.py", "--examples", "3", "--max-wait", "0.1", within=240)
    )
    summary = re.search(r"^FUZZ_API (.*)$", out, re.M)
    assert summary is not None, out[-5000:]
    fields = dict(kv.split("=") for kv in summary.group(1).split())
    assert int(fields["operations"]) >= 59, out  # every operation of the document
    assert int(fields["requests"]) >= 200, out
    keys = ("server_errors", "no_answer", "schema_errors", "alive", "defects")
    expected = {"server_errors": "0", "no_answer": "0", "schema_errors": "0", "alive": "1"}
    assert {k: fields[k] for k in keys} == {**expected, "defects": "0"}, "\n".join(
        line for line in out.splitlines() if line.startswith(("DEFECT", "  curl"))
    )
    assert code == 0, out[-3000:]
