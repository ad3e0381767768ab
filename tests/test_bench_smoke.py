"""The bench command runs as the README says (`python -m bench.run`), every benchmark to its result line.

Tiny sizes and one short round each: this checks the harness (servers, load generator, references, parsing of
their output), not the figures; a missed target at these sizes is not a failure here, a benchmark that does
not complete is. PostgreSQL only, as the bench itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_ADMIN_URL, TEST_DB

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = [
    "graphql_read",
    "graphql_node",
    "graphql_read_instructions",
    "fanout",
    "report",
    "tracking_open",
    "execution_workers",
    "snapshot",
    "inapp_send",
    "worker_rss",
    "activation",
    "crash_window",
    "trigger",
    "read_under_send",  # 1 s loads here (BENCH_SEND_LOAD_SECONDS); its BENCH_TRACE file is checked below
]


def _run_bench(command: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The bench in a session of its own, its output in files: on a timeout the whole group (servers, workers,
    npm) is killed, where a pipe held open by one orphaned grandchild would leave the test waiting forever."""
    stdout, stderr = tmp_path / "bench.stdout", tmp_path / "bench.stderr"
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"the bench did not finish in 600 s:\n{stdout.read_text()}\n{stderr.read_text()[-3000:]}")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(command, proc.returncode, stdout.read_text(), stderr.read_text())


@pytest.mark.timeout(720)
@pytest.mark.skipif(TEST_DB != "postgres", reason="the bench runs on PostgreSQL")
def test_every_benchmark_completes_and_prints_its_line(tmp_path: Path) -> None:
    env = {
        # No BENCH_REDIS_URL: the bench starts a redis-server of its own (it flushes it), as by default.
        **{k: v for k, v in os.environ.items() if k != "BENCH_REDIS_URL"},
        "BENCH_PG_DSN": POSTGRES_ADMIN_URL,
        "BENCH_DURATION": "1",
        "BENCH_ROUNDS": "1",
        "BENCH_SUBSCRIBERS": "10",
        "BENCH_REPORT_RUNS": "2",
        "BENCH_REPORT_PROFILES": "50",
        "BENCH_REPORT_EVENTS": "100",
        "BENCH_REPORT_ROUNDS": "1",
        "BENCH_RUN_PROFILES": "100",
        "BENCH_CRASH_PROFILES": "300",
        "BENCH_SINK_DELAY_MS": "0",
        "BENCH_TRIALS": "1",
        "BENCH_INSTRUCTIONS_DURATION": "2",
        "BENCH_TRIGGER_RATE": "20",
        "BENCH_TRIGGER_SECONDS": "1",
        "BENCH_SEND_LOAD_SECONDS": "1",
        "BENCH_TRACE": str(tmp_path / "read_under_send.trace"),  # read_under_send's per-second latencies and statements
        # The reference engine is a ~480 MB npm install: used where a bench run installed it, not fetched here.
        "BENCH_POSTGRAPHILE_INSTALL": "0",
        # Not the checked-in history: a tiny run's figures mean nothing.
        "BENCH_RESULTS_DIR": str(tmp_path),
    }
    out = _run_bench([sys.executable, "-m", "bench.run", "--profiles", "300", *BENCHMARKS], env, tmp_path)
    assert out.returncode in (0, 1), out.stderr[-3000:]  # 1: a target missed, at these sizes
    lines = out.stdout.splitlines()
    assert lines[0].startswith("machine: ")
    # SKIP: graphql_node where PostGraphile cannot be installed (no npm or registry); its line says why.
    verdicts = (["OK"], ["MISS"], ["SKIP"])
    results = {line.split()[1]: line.split()[0] for line in lines[1:] if line.split()[:1] in verdicts}
    assert set(results) == set(BENCHMARKS), out.stdout + out.stderr[-3000:]
    assert "FAIL" not in out.stdout, out.stdout + out.stderr[-3000:]
    # Each benchmark's result is also a JSON file named for its UTC time and the benchmark, saying what it measured.
    records = {path.name.partition("-")[2].removesuffix(".json"): path for path in tmp_path.glob("*.json")}
    assert set(records) == set(BENCHMARKS), sorted(records)
    trace = json.loads((tmp_path / "read_under_send.trace").read_text())
    assert trace["timeline"] and trace["activity"] and {"second", "n", "p99_ms"} <= set(trace["timeline"][0])
    for name, path in records.items():
        record = json.loads(path.read_text())
        assert record["name"] == name
        assert record["holds"] is (results[name] in ("OK", "SKIP"))
        assert record["skipped"] is (results[name] == "SKIP")
        assert (
            isinstance(record["measured"], int | float)
            and record["machine"]
            and record["settings"]["BENCH_ROUNDS"] == "1"
        )
