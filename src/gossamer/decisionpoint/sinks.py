"""Where the decision point's decisions go: the control plane's audit trail
(``POST /v1/authz/decisions`` with a decision-point token, ``--server``), or JSON lines on
stdout or in a file (``--graph``, ``--decisions-log``). docs/ngac.md, "`gossamer authz
serve`".

The control plane is verified as the graph's long poll verifies it (``--ca-file``, or the
CA fingerprint in the token) before the token is sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx

from gossamer.agent.trust import untrusted, verification
from gossamer.cancel import raise_if_cancelling
from gossamer.decisionpoint.recorder import DecisionRecord
from gossamer.errors import ConfigError, GossamerError, ReportRefusedError

DECISIONS_PATH = "/v1/authz/decisions"
#: ``json.dumps(..., sort_keys=True)`` without making an encoder per line (most of its cost)
_LINE = json.JSONEncoder(sort_keys=True).encode
#: seconds one report may take
REPORT_TIMEOUT_S = 10.0


def body(batch: list[DecisionRecord]) -> dict[str, Any]:
    return {"decisions": [r.to_body() for r in batch]}


class ControlPlaneSink:
    """Reports batches to the control plane; one client, made on first use."""

    def __init__(self, server: str, token: str, ca_file: Path | None = None) -> None:
        self.server = server
        self.token = token
        self.ca_file = ca_file
        self._client: httpx.AsyncClient | None = None

    async def _connect(self) -> httpx.AsyncClient:
        if self._client is None:
            found = await asyncio.to_thread(
                verification, self.server, token=self.token, ca_file=self.ca_file
            )
            self._client = httpx.AsyncClient(
                base_url=self.server,
                verify=True if found is None else found,
                trust_env=False,
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=REPORT_TIMEOUT_S,
            )
        return self._client

    async def __call__(self, batch: list[DecisionRecord]) -> None:
        try:
            client = await self._connect()
            response = await client.post(DECISIONS_PATH, json=body(batch))
        except (httpx.HTTPError, GossamerError) as e:
            raise_if_cancelling()
            raise ConnectionError(str(untrusted(e, self.server) or e)) from None
        status = response.status_code
        if status < 300:
            return
        where = f"{self.server}{DECISIONS_PATH} answered {status}: {response.text[:300]}"
        if status in (401, 403, 404, 413, 422):  # never taken, however often it is sent
            if status in (401, 403):
                where += (
                    "; the token needs to be a decision point's "
                    "(`gossamer token create --decision-point NAME`)"
                )
            raise ReportRefusedError(where)
        raise ConnectionError(where)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


class LogSink:
    """Writes each record as one JSON line to ``path`` (appended, 0600) or stdout."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path

    def check(self) -> None:
        """``ConfigError`` naming ``--decisions-log`` if the file cannot be written."""
        if self.path is not None:
            try:
                self._write([])
            except OSError as e:
                raise ConfigError(
                    f"--decisions-log: cannot write {self.path}: {e.strerror}"
                ) from None

    async def __call__(self, batch: list[DecisionRecord]) -> None:
        await asyncio.to_thread(self._write, batch)

    def _write(self, batch: list[DecisionRecord]) -> None:
        lines = "".join([_LINE(r.to_body()) + "\n" for r in batch])
        if self.path is None:
            sys.stdout.write(lines)
            sys.stdout.flush()
            return
        # who was refused what is no one else's business
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(lines)
