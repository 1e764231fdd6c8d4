"""The SQLite store: flushed minutes read back with their sketches; retention and the disk
cap delete the oldest minutes; the service refuses to start without a token unless told to
serve without one on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from gossamer.errors import ConfigError
from gossamer.telemetry.aggregate import Bucket, Key
from gossamer.telemetry.serve import ServeSettings
from gossamer.telemetry.store import TelemetryStore

M0 = 30_000_000


def buckets(minute: int, n: int = 1) -> dict[Key, Bucket]:
    out = {}
    for i in range(n):
        b = Bucket()
        b.requests, b.e5xx = 3, 1
        for v in (1.0, 2.0, 400.0 + i):
            b.sketch.add(v)
        out[
            Key("client", "default/web", "service", f"default/s{i}", "service", "", "GET r", minute)
        ] = b
    return out


@pytest.mark.asyncio
async def test_minutes_read_back_and_retention_deletes_old_ones(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path / "t.sqlite", retention_s=600, max_bytes=1 << 30)
    await store.open()
    try:
        for m in (M0, M0 + 5, M0 + 12):
            await store.write(buckets(m), [(m, "sidecar~default~web-1", 3)])
        read = await store.buckets(M0)
        assert sorted(k.minute for k, _ in read) == [M0, M0 + 5, M0 + 12]
        assert all(b.requests == 3 and b.e5xx == 1 and b.sketch.count == 3 for _, b in read)
        assert await store.receipts(M0) == {"sidecar~default~web-1": 9}
        await store.prune(M0 + 13)  # 10 minutes kept: M0 goes, M0 + 5 stays
        assert sorted(k.minute for k, _ in await store.buckets(0)) == [M0 + 5, M0 + 12]
        assert await store.receipts(0) == {"sidecar~default~web-1": 6}
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_the_disk_cap_deletes_the_oldest_minutes_first(tmp_path: Path) -> None:
    path = tmp_path / "t.sqlite"
    store = TelemetryStore(path, retention_s=86400 * 30, max_bytes=1 << 20)
    await store.open()
    try:
        for m in range(40):
            await store.write(buckets(M0 + m, 100), [])
        await store.prune(M0 + 40)
        minutes = sorted({k.minute for k, _ in await store.buckets(0)})
        assert minutes and minutes[-1] == M0 + 39 and minutes[0] > M0
        assert minutes == list(range(minutes[0], M0 + 40))  # oldest gone, no holes
        assert await store._run(store._used_bytes) <= 1 << 20
    finally:
        await store.close()


def settings(**kw: object) -> ServeSettings:
    base: dict[str, object] = {
        "listen": ("127.0.0.1", 0), "http": ("127.0.0.1", 0), "data": Path("t.sqlite"),
    }  # fmt: skip
    return ServeSettings(**{**base, **kw})  # type: ignore[arg-type]


def test_no_token_is_refused_unless_insecure_on_loopback(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--token-file"):
        settings().check()
    settings(insecure_no_auth=True).check()
    with pytest.raises(ConfigError, match="not loopback"):
        settings(insecure_no_auth=True, http=("0.0.0.0", 8084)).check()
    short = tmp_path / "token"
    short.write_text("abc\n")
    with pytest.raises(ConfigError, match="at least 16"):
        settings(token_file=short).token()
    with pytest.raises(ConfigError, match="cannot read"):
        settings(token_file=tmp_path / "missing").token()
