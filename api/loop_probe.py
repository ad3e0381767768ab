"""A debug probe for latency stalls of a serving process (issue 17's acceptance p99): LOOP_PROBE_FILE set, the
process appends one line per event-loop stall and per garbage collection longer than LOOP_PROBE_MS to it:
`<unix time> lag <ms>` (a 10 ms timer that fired late by that much: the loop was busy or the process had no
CPU) and `<unix time> gc<generation> <ms>`. Off by default; meant for the benches, not production."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any, TextIO

TICK_SECONDS = 0.01


def start_probe() -> asyncio.Task[None] | None:
    path = os.environ.get("LOOP_PROBE_FILE")
    if not path:
        return None
    threshold_ms = float(os.environ.get("LOOP_PROBE_MS", "20"))
    out = open(path, "a", buffering=1)  # closed when the probe is cancelled
    return asyncio.get_running_loop().create_task(_watch(out, threshold_ms), name="loop-probe")


def _gc_timer(out: TextIO, threshold_ms: float) -> Any:
    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
            return
        took = (time.perf_counter() - started[0]) * 1000
        if took >= threshold_ms:
            out.write(f"{time.time():.3f} gc{info['generation']} {took:.1f}\n")

    return on_gc


async def _watch(out: TextIO, threshold_ms: float) -> None:
    on_gc = _gc_timer(out, threshold_ms)
    gc.callbacks.append(on_gc)
    try:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(TICK_SECONDS)
            lag = (time.perf_counter() - before - TICK_SECONDS) * 1000
            if lag >= threshold_ms:
                out.write(f"{time.time():.3f} lag {lag:.1f}\n")
    finally:
        gc.callbacks.remove(on_gc)
        out.close()
