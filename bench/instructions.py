"""The graphql_read page counted in machine instructions per request (callgrind), against the same reference.

Instructions do not depend on what else the machine runs, so this is the figure to compare two versions of the
read path with on a shared machine (requests/s and CPU time move with the neighbours' load). Each server runs
under `valgrind --tool=callgrind` with instrumentation off; after a warm-up it is switched on
(`callgrind_control -i on`) for one round of the same 32-connection load as graphql_read, then off, and the
instructions collected are divided by the requests answered. Under valgrind a server is some 30-50 times
slower, so the rounds are short. Needs valgrind (Debian's package); the ratio is the reference's count over
Herald's, the target graphql_read's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, Result, dsn_for, free_port, process, process_log, server_env
from bench.graphql_read import full_body, persisted_body, post

DURATION = float(os.environ.get("BENCH_INSTRUCTIONS_DURATION", "30"))
CALLGRIND = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=/dev/null"]


def _count(cmd: list[str], env: dict[str, str], port: int, load_args: list[str], warm_up: object = None) -> float:
    """Instructions per request of the server `cmd` under one round of load."""
    ready = f"http://127.0.0.1:{port}/healthz"
    # valgrind prints what it collected when the server exits: give it time to.
    with process(CALLGRIND + cmd, env, ready, ready_timeout=300, stop_timeout=60) as proc:
        if callable(warm_up):
            warm_up()
        base = [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--connections", "32", "--check-errors"]
        subprocess.run([*base, *load_args, "--warmup", "0", "--duration", "5"], check=True, capture_output=True)
        subprocess.run(["callgrind_control", "-i", "on", str(proc.pid)], check=True, capture_output=True)
        out = subprocess.run(
            [*base, *load_args, "--warmup", "0", "--duration", str(DURATION)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        subprocess.run(["callgrind_control", "-i", "off", str(proc.pid)], check=True, capture_output=True)
    figures = json.loads(out.stdout)
    if figures["errors"]:
        raise RuntimeError(f"{figures['errors']} failed requests, first: {figures.get('first_error')}")
    stderr = process_log(proc)
    collected = re.findall(r"Collected : (\d+)", stderr)
    if not collected:
        raise RuntimeError(f"callgrind reported nothing:\n{stderr[-2000:]}")
    # Requests answered in the window ("sent": no warm-up here); the 32 in flight at each edge are the error bar.
    return int(collected[-1]) / max(figures["sent"], 1)


def run(database: str, seeded: dict) -> Result:
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise RuntimeError("valgrind is not installed (Debian: apt install valgrind)")
    key = str(seeded["key"])
    gql_port, ref_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        body_file = str(Path(tmp) / "body.json")
        Path(body_file).write_bytes(persisted_body())
        gql = _count(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(gql_port)],
            server_env(database),
            gql_port,
            ["--path", "/graphql", "--method", "POST", "--body-file", body_file,
             "--header", f"Authorization: Bearer {key}", "--header", "Content-Type: application/json"],
            warm_up=lambda: post(f"http://127.0.0.1:{gql_port}/graphql", full_body(), key),
        )  # fmt: skip
    ref = _count(
        [sys.executable, "-m", "uvicorn", "bench.reference_app:app", "--host", "127.0.0.1", "--port", str(ref_port),
         "--no-access-log", "--log-level", "warning", "--no-server-header"],
        server_env(database, BENCH_SANDBOX_ID=str(seeded["sandbox_id"]), DATABASE_URL=dsn_for(database)),
        ref_port,
        ["--path", "/campaigns", "--method", "GET"],
    )  # fmt: skip
    # "Rates" as requests per 10^9 instructions, so the ratio reads like the others (higher is better).
    return Result(
        "graphql_read_instructions",
        "req/Ginstr",
        1e9 / gql,
        1e9 / ref,
        ">= 0.5",
        ref / gql >= 0.5,
        f"{gql / 1e6:.2f} M instructions per request (reference {ref / 1e6:.2f} M), {DURATION:.0f} s under callgrind",
    )
