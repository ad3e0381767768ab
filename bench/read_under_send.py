"""read_under_send (issue 22): graphql_read's page while an in-app run of BENCH_PROFILES profiles is being sent on
the same machine, against the same page with nothing sending, in the same bench run.

`herald serve` pinned to BENCH_SERVER_CPU, the load generator on BENCH_LOAD_CPU (as graphql_read). First the idle
throughput (closed loop); then, open-loop at half of it, the idle p99 and the p99 while a worker subprocess
(bench.execution_worker) executes the run. Target: the p99 during the run <= 2x the idle p99. The run starts
first and the load begins once it is sending; the line says whether the run outlasted the load (at small sizes
it does not, and the figure says little). The worker lowers its priority as `herald worker` does (WORKER_NICE,
default 10); BENCH_COMPARE_NICE=1 adds the same load during a second send by a worker with WORKER_NICE=0, and
BENCH_COMPARE_PACING=1 during a send that does not give way to the API (SEND_SHARE_WHEN_API_BUSY=1).

The timed loads (idle and during the run) last BENCH_SEND_LOAD_SECONDS (default 30) after graphql_read's warm-up:
they were graphql_read's 8 s, which at 1,000,000 profiles covered only the run's first seconds after the snapshot
(its counts and ANALYZE, mostly in the warm-up) and not the sending. BENCH_TRACE=FILE writes the load's per-second
latencies and the database's active statements (sampled every 50 ms) to FILE.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from bench.common import ROOT, SERVER_CPU, Result, dsn_for, free_port, herald_serve, server_env
from bench.execution import _new_run_plain, _setup, _status_counts, _truncate
from bench.graphql_read import full_body, load, persisted_body, post

MAX_RATIO = 2.0
LOAD_SECONDS = float(os.environ.get("BENCH_SEND_LOAD_SECONDS", "30"))


async def _sending(database: str, run_id: int, worker: subprocess.Popen) -> None:
    """Until the run's snapshot is taken (it is sending) or the worker is gone."""
    from tests.e2e.polling import wait_until

    conn = await asyncpg.connect(dsn_for(database))
    query = "SELECT snapshot_done_at IS NOT NULL FROM campaign_run WHERE id = $1"

    async def sending() -> bool:
        return worker.poll() is not None or bool(await conn.fetchval(query, run_id))

    try:
        await wait_until(sending, timeout=3600, interval=0.05)
    finally:
        await conn.close()


def _sent(database: str, run_id: int) -> int:
    """The run's SENT rows now (read outside the timed load: at 1,000,000 rows the count takes a while)."""
    counts = asyncio.run(_status_counts(database, run_id))
    return sum(n for (status, _), n in counts.items() if status == "SENT")


@contextlib.contextmanager
def _activity_sampled(database: str, trace: str | None) -> Iterator[list[dict]]:
    """With a trace file asked for (BENCH_TRACE): PostgreSQL's active statements (this database's marked `ours`)
    and the load average every 50 ms while the block runs, to line up with the load's per-second latencies."""
    samples: list[dict] = []
    if not trace:
        yield samples
        return
    stop = threading.Event()

    async def sample() -> None:
        conn = await asyncpg.connect(dsn_for(database))
        query = (
            "SELECT datname = current_database() AS ours, pid, backend_type, wait_event_type, wait_event, "
            "left(query, 100) AS query, extract(epoch FROM now() - query_start) AS running FROM pg_stat_activity "
            "WHERE state = 'active' AND pid <> pg_backend_pid()"
        )
        try:
            while not stop.is_set():
                rows = await conn.fetch(query)
                load_average = Path("/proc/loadavg").read_text().split()[0]
                samples.append({"wall": time.time(), "load": load_average, "active": [dict(r) for r in rows]})
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    thread = threading.Thread(target=asyncio.run, args=(sample(),))
    thread.start()
    try:
        yield samples
    finally:
        stop.set()
        thread.join()


def run(database: str, seeded: dict) -> Result:
    key = str(seeded["key"])
    ids = asyncio.run(_setup(database))
    asyncio.run(_truncate(database))
    port = free_port()
    headers = [f"Authorization: Bearer {key}", "Content-Type: application/json", "Accept: application/json"]
    with tempfile.TemporaryDirectory() as tmp, herald_serve(database, port, cpu=SERVER_CPU) as server:
        url = f"http://127.0.0.1:{port}/graphql"
        first = post(url, full_body(), key)  # registers the persisted document
        assert post(url, persisted_body(), key) == first
        body_file = str(Path(tmp) / "body.json")
        Path(body_file).write_bytes(persisted_body())
        saturated = load(port, "/graphql", "POST", body_file, headers, server.pid)
        rate = 0.5 * saturated["rps"]
        idle = load(port, "/graphql", "POST", body_file, headers, server.pid, rate, duration=LOAD_SECONDS)
        busy, sent, load_seconds = _during_a_send(database, ids, port, body_file, headers, server.pid, rate, tmp)
        # The same load during a second send whose worker keeps its priority (WORKER_NICE=0): what the setting buys,
        # measured in this run (BENCH_COMPARE_NICE=1; it doubles the benchmark's time).
        unniced = None
        if os.environ.get("BENCH_COMPARE_NICE") == "1":
            asyncio.run(_truncate(database))
            unniced = _during_a_send(database, ids, port, body_file, headers, server.pid, rate, tmp, WORKER_NICE="0")[0]
        # The same load during a send that does not give way to the API (SEND_SHARE_WHEN_API_BUSY=1): what the
        # pacing buys, in this run (BENCH_COMPARE_PACING=1; it doubles the benchmark's time).
        unpaced = None
        if os.environ.get("BENCH_COMPARE_PACING") == "1":
            asyncio.run(_truncate(database))
            unpaced = _during_a_send(
                database, ids, port, body_file, headers, server.pid, rate, tmp, SEND_SHARE_WHEN_API_BUSY="1"
            )
    asyncio.run(_truncate(database))
    compared = (("unniced", unniced), ("unpaced", unpaced and unpaced[0]))
    for name, figures in (("idle", idle), ("during the run", busy), *((n, f) for n, f in compared if f)):
        if figures["errors"]:
            raise RuntimeError(f"{name}: {figures['errors']} failed requests, first: {figures.get('first_error')}")
    ratio = busy["p99_ms"] / max(idle["p99_ms"], 1e-9)
    outlasted = sent["seconds"] >= load_seconds
    return Result(
        "read_under_send", "p99 ms", busy["p99_ms"], idle["p99_ms"], f"<= {MAX_RATIO:g}x the idle p99",
        ratio <= MAX_RATIO,
        f"at {rate:.0f} req/s (half the idle {saturated['rps']:.0f} req/s): p50 {busy['p50_ms']:.1f} ms during the "
        f"run vs {idle['p50_ms']:.1f} ms idle, {busy['rps']:.0f} vs {idle['rps']:.0f} req/s answered; server CPU "
        f"{busy['cpu_ms']:.2f} vs {idle['cpu_ms']:.2f} ms per request; run of {sent['sent']} in-app messages took "
        f"{sent['seconds']:.1f} s, load {load_seconds:.1f} s ({'inside' if outlasted else 'outlasted'} the run), "
        f"{sent['sent_while_loaded']} sent meanwhile ({sent['sent_while_loaded'] / load_seconds:.0f}/s); "
        f"worker WORKER_NICE {os.environ.get('WORKER_NICE', '10')}"
        + (f"; with WORKER_NICE=0 p99 {unniced['p99_ms']:.1f} ms, p50 {unniced['p50_ms']:.1f} ms "
           f"({unniced['p99_ms'] / max(idle['p99_ms'], 1e-9):.2f}x idle)" if unniced else "")
        + (f"; not paced (SEND_SHARE_WHEN_API_BUSY=1): p99 {unpaced[0]['p99_ms']:.1f} ms, p50 "
           f"{unpaced[0]['p50_ms']:.1f} ms ({unpaced[0]['p99_ms'] / max(idle['p99_ms'], 1e-9):.2f}x idle), run "
           f"{unpaced[1]['seconds']:.1f} s" if unpaced else ""),
    )  # fmt: skip


def _during_a_send(
    database: str,
    ids: dict,
    port: int,
    body_file: str,
    headers: list[str],
    server_pid: int,
    rate: float,
    tmp: str,
    **worker_env: str,
) -> tuple[dict, dict, float]:
    """The page's load while a worker subprocess sends an in-app run: the load's figures, the worker's report
    and how long the load took."""
    run_id = asyncio.run(_new_run_plain(database, ids["inapp_all"], ids["sandbox"]))
    # Output to files: a pipe nobody reads while the load runs would stall a worker that logs.
    out_file, err_file = Path(tmp) / "worker.out", Path(tmp) / "worker.err"
    with out_file.open("w") as stdout, err_file.open("w") as stderr:
        worker = subprocess.Popen(
            [sys.executable, "-m", "bench.execution_worker", str(run_id)],
            env=server_env(database, **worker_env), cwd=ROOT, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        asyncio.run(_sending(database, run_id, worker))
        sent_before = _sent(database, run_id)
        started = time.monotonic()
        trace = os.environ.get("BENCH_TRACE")
        with _activity_sampled(database, trace) as activity:
            busy = load(
                port, "/graphql", "POST", body_file, headers, server_pid, rate, timeline=bool(trace),
                duration=LOAD_SECONDS,
            )  # fmt: skip
        load_seconds = time.monotonic() - started
        sent_while_loaded = _sent(database, run_id) - sent_before
        if trace:
            Path(trace).write_text(json.dumps({"timeline": busy.pop("timeline"), "activity": activity}, default=float))
        worker.wait(timeout=7200)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    if worker.returncode != 0:
        raise RuntimeError(f"worker subprocess failed:\n{err_file.read_text()[-3000:]}")
    report = json.loads(out_file.read_text().strip().splitlines()[-1])
    report["sent_while_loaded"] = sent_while_loaded
    return busy, report, load_seconds
