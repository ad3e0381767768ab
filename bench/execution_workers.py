"""Two worker processes sharing one run vs one worker process on a run of the same size (DESIGN §10: >= 1.7x).

Email to an aiosmtpd sink in this process that takes BENCH_SINK_DELAY_MS (default 20) per message, as a
real relay's round trips do; each worker sends with the preset's 5 SMTP connections. The run is split into
send-part jobs (jobs/runs.py): the second process takes a part and claims batches from the same ledger.
Deliveries/s = sent / (finished_at - started_at) of the run, from the database. A redis-server of its own.
BENCH_RUN_PROFILES sets the audience size (default 6000).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bench.common import Result, dsn_for

if TYPE_CHECKING:
    from tests.crash.harness import Herald

PROFILES = int(os.environ.get("BENCH_RUN_PROFILES", "6000"))
SINK_DELAY = float(os.environ.get("BENCH_SINK_DELAY_MS", "20")) / 1000
TARGET = 1.7


async def _one_run(herald: Herald, port: int, workers: int, label: str) -> tuple[float, int]:
    seeded = await herald.action(
        "seed", {"profiles": PROFILES, "sink_port": port, "enqueue": False, "sandbox": f"bench-{label}"}
    )
    started = [herald.worker() for _ in range(workers)]
    try:
        await herald.enqueue(seeded["run_id"])
        run = await herald.wait_finished(seeded["run_id"], timeout=600)
    finally:
        for worker in started:
            worker.stop()
    assert run["status"] == "SUCCEEDED", dict(run)
    took = (run["finished_at"] - run["started_at"]).total_seconds()
    return run["sent"] / took, run["sent"]


async def _run(database: str) -> Result:
    # The crash suite's harness (worker processes, own redis-server, recording sink), imported only when this
    # benchmark runs: tests.conftest looks for a Redis at import time.
    from tests.crash.harness import Herald, RedisServer, SlowSink
    from tests.jobs.smtp_sink import smtp_sink

    directory = Path(tempfile.mkdtemp(prefix="herald-bench-workers-"))
    redis = RedisServer(directory)
    redis.start()
    herald = Herald(dsn_for(database), redis, directory, lease=30.0)
    await herald.connect()
    try:
        async with smtp_sink(SlowSink(delay=SINK_DELAY)) as sink:
            one, sent_one = await _one_run(herald, sink.port, 1, "one")
            redis.cli("FLUSHALL")  # our own redis-server
            two, sent_two = await _one_run(herald, sink.port, 2, "two")
    finally:
        await herald.close()
        redis.stop()
    return Result(
        name="execution_workers",
        unit="msg/s",
        measured=two,
        reference=one,
        target=f">= {TARGET}x one worker",
        holds=two >= TARGET * one,
        detail=f"{sent_two} / {sent_one} emails, sink {SINK_DELAY * 1000:.0f} ms per message",
    )


def run(database: str, seeded: dict[str, object]) -> Result:
    return asyncio.run(_run(database))
