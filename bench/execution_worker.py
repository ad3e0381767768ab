"""One run executed the way a worker executes it, in this process: `python -m bench.execution_worker RUN_ID`.

Prints one JSON line: seconds (and CPU seconds) for the whole run, seconds to the end of the snapshot, messages
sent, the run's final status and this process's peak RSS (VmHWM), which is what the worker-memory target is about.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from typing import Any

from tortoise import Tortoise

from api.settings import Settings, tortoise_config


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


class GcClock:
    """Seconds spent in the cyclic garbage collector, per generation (gc.callbacks)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds[info["generation"]] += time.perf_counter() - self._started


class PhaseClock:
    """Wall seconds spent in some steps of the run (where the sending's time goes besides the stream itself)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.cpu: dict[str, float] = {}

    def wrap(self, module: Any, attribute: str, name: str) -> None:
        original = getattr(module, attribute)

        async def timed(*args: Any, **kwargs: Any) -> Any:
            started, cpu_started = time.perf_counter(), time.process_time()
            try:
                return await original(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - cpu_started
                self.calls[name] = self.calls.get(name, 0) + 1

        setattr(module, attribute, timed)


async def main(run_id: int) -> dict[str, Any]:
    import jobs.runs as runs
    from jobs.context import job_ctx
    from jobs.worker import freeze_startup_heap, lower_priority
    from models.campaigns.campaign import CampaignRun

    settings = Settings()
    lower_priority(settings)  # as `herald worker` does
    await Tortoise.init(config=tortoise_config(settings.resolved_database_url, settings.db_pool_max))
    snapshot_done: list[float] = []
    original_snapshot = runs.snapshot_audience

    async def timed_snapshot(*args: Any, **kwargs: Any) -> Any:
        inserted = await original_snapshot(*args, **kwargs)
        snapshot_done.append(time.perf_counter())
        return inserted  # the statement's counts (PostgreSQL), which the run uses

    runs.snapshot_audience = timed_snapshot  # only to report how long the snapshot took
    phases = PhaseClock()
    phases.wrap(runs, "claim_batch", "claim")
    phases.wrap(runs, "extend_run_lease", "run lease")
    phases.wrap(runs, "ledger_counts", "counts")
    import jobs.leased_batch as leased_batch

    phases.wrap(leased_batch, "prepare_batch", "prepare")
    phases.wrap(leased_batch, "stream_batch", "stream")
    phases.wrap(leased_batch, "send_chunks", "chunks")
    import jobs.streaming as streaming

    phases.wrap(streaming, "record_and_mark", "writes")  # beside the stream, not a part of it
    try:
        ctx = job_ctx(settings)
        freeze_startup_heap()  # as `herald worker` does once started
        gc_clock = GcClock()
        gc.callbacks.append(gc_clock)
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = await runs.execute_run(ctx, run_id)
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        run = await CampaignRun.get(id=run_id)
    finally:
        await Tortoise.close_connections()
    return {
        "seconds": seconds,
        # This process's CPU (all threads): steadier than the wall clock on a shared machine.
        "cpu_seconds": cpu_seconds,
        "snapshot_seconds": (snapshot_done[0] - started) if snapshot_done else 0.0,
        "sent": run.sent,
        "status": outcome.get("status"),
        "peak_rss_mb": peak_rss_mb(),
        "gc_seconds": [round(s, 3) for s in gc_clock.seconds],
        # step: [wall seconds, this process's CPU seconds meanwhile, calls]
        "phase_seconds": {
            name: [round(s, 3), round(phases.cpu[name], 3), phases.calls[name]] for name, s in phases.seconds.items()
        },
    }


if __name__ == "__main__":
    from jobs.worker import run_loop

    print(json.dumps(run_loop(main(int(sys.argv[1])))), flush=True)  # on the loop `herald worker` runs
