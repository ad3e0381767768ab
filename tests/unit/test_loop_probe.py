"""The debug probe behind the trigger bench's trace (api/loop_probe.py): a blocked event loop is written down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from api.loop_probe import start_probe


def _block_the_loop(seconds: float) -> None:
    time.sleep(seconds)


async def test_a_blocked_loop_is_written_with_its_length(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "probe.txt"
    monkeypatch.setenv("LOOP_PROBE_FILE", str(out))
    monkeypatch.setenv("LOOP_PROBE_MS", "50")
    probe = start_probe()
    assert probe is not None
    try:
        await asyncio.sleep(0)  # the probe's first tick is scheduled
        _block_the_loop(0.2)  # the probe's 10 ms timer fires 190 ms late
        for _ in range(500):  # until the probe's next step wrote it (bounded: 5 s)
            if out.exists() and out.read_text():
                break
            await asyncio.sleep(0.01)
        kind, lag = out.read_text().split()[1:3]
        assert kind == "lag" and float(lag) >= 150, out.read_text()
    finally:
        probe.cancel()


def test_off_without_a_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOP_PROBE_FILE", raising=False)
    assert start_probe() is None
