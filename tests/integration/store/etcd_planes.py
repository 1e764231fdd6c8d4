"""For the etcd tests: ``gossamer control-plane --store etcd://...`` as its own process
(what an operator runs; plaintext API on loopback, xDS with a plaintext port, no
telemetry), and traffic that counts what fails while a fault happens."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from gossamer.envoy.process import ManagedProcess
from gossamer.polling import wait_until
from gossamer.testing.etcd import etcd_installed


def etcd_marks(timeout: int | None = 300, *, slow: bool = False) -> list[pytest.MarkDecorator]:
    """The marks of a test module on a real etcd: ``timeout`` s per test (None: the
    suite's default), ``slow`` for the full tier only."""
    marks = [
        pytest.mark.integration,
        pytest.mark.asyncio,
        pytest.mark.skipif(
            not etcd_installed(), reason="no etcd binary (Debian's etcd-server; scripts/install)"
        ),
    ]
    if timeout is not None:
        marks.append(pytest.mark.timeout(timeout))
    if slow:
        marks.append(pytest.mark.slow)
    return marks


#: the marks of a test module running control planes on a real etcd
ETCD_PLANES = etcd_marks()


@asynccontextmanager
async def cli_control_plane(
    data: Path, store: str, api: int, xds: int, *extra: str
) -> AsyncIterator[ManagedProcess]:
    """A control plane on ``store`` serving the API on ``api`` and xDS on ``xds``, ready
    (``/readyz`` 200) when entered and stopped when left; ``extra``: more options. Its log
    is ``<data>.log`` beside ``data``."""
    argv = [sys.executable, "-c", "from gossamer.cli.main import run; run()", "control-plane"]
    argv += ["--data-dir", str(data), "--store", store, "--api-tls", "off"]
    argv += ["--api-addr", f"127.0.0.1:{api}", "--xds-addr", f"127.0.0.1:{xds}"]
    argv += ["--xds-tls", "optional", "--xds-tls-addr", "127.0.0.1:0", "--telemetry", "off"]
    argv += extra
    log = data.parent / f"{data.name}.log"
    proc = ManagedProcess(argv, log_path=log, name=f"control-plane {data.name}")
    await proc.start()
    try:
        async with httpx.AsyncClient(trust_env=False) as c:

            async def ready() -> bool:
                if not proc.running:
                    raise AssertionError(f"the control plane exited:\n{proc.log_tail()}")
                try:
                    return (await c.get(f"http://127.0.0.1:{api}/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout=60, what="the control plane to be ready")
        yield proc
    finally:
        await proc.stop()


async def answered_by(client: httpx.AsyncClient, url: str) -> str | None:
    """The backend (``gossamer.testing.backends.HttpBackend``) that answered a GET of
    ``url`` with 200; None for any other answer or none."""
    try:
        r = await client.get(url)
    except httpx.TransportError:
        return None
    return str(json.loads(r.text)["backend"]) if r.status_code == 200 else None


class Traffic:
    """Requests in a bounded loop (``MAX_REQUESTS``) while something happens: ``ask``
    sends one and names the backend that answered (None: no answer or an error); an answer
    from one of ``good`` is ``ok``, anything else ``failed``."""

    MAX_REQUESTS = 20_000

    def __init__(self, ask: Callable[[], Awaitable[str | None]], good: Iterable[str]) -> None:
        self.ask = ask
        self.good = frozenset(good)
        self.ok = 0
        self.failed = 0

    @asynccontextmanager
    async def flowing(self) -> AsyncIterator[Traffic]:
        """The loop runs inside the block (and stops at its end)."""
        stop = asyncio.Event()

        async def run() -> None:
            for _ in range(self.MAX_REQUESTS):
                if stop.is_set():
                    return
                if await self.ask() in self.good:
                    self.ok += 1
                else:
                    self.failed += 1
                await asyncio.sleep(0)

        async with asyncio.TaskGroup() as tg:
            tg.create_task(run())
            try:
                yield self
            finally:
                stop.set()

    async def more(self, n: int, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Return once ``n`` more requests were answered ok."""
        target = self.ok + n
        await wait_until(lambda: self.ok >= target, timeout=timeout, what=f"{n} more answers")
