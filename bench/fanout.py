"""Subscription fan-out: one campaign status change reaching 1,000 WebSocket subscribers spread over two
`herald serve` processes (DESIGN §10: all delivered within 1 s).

Measured from sending the campaignArchive mutation to one server until the last subscriber, on either server,
has the change. No reference: the target is absolute.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys

from bench.common import ROOT, Result, free_port, herald_serve, redis_url

SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "1000"))
LIMIT_MS = 1000.0


def run(database: str, seeded: dict) -> Result:
    stopped = list(seeded["stopped_ids"])  # type: ignore[arg-type]
    campaign = stopped.pop()  # each run archives a campaign nobody archived yet
    seeded["stopped_ids"] = stopped
    ports = [free_port(), free_port()]
    with contextlib.ExitStack() as stack:
        for port in ports:
            stack.enter_context(herald_serve(database, port, ("WS_MAX_SUBSCRIPTIONS", "10")))
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.ws_clients",
                "--ports",
                ",".join(map(str, ports)),
                "--key",
                str(seeded["key"]),
                "--sandbox",
                str(seeded["sandbox_id"]),
                "--campaign",
                str(campaign),
                "--redis-url",
                redis_url(),
                "--n",
                str(SUBSCRIBERS),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
    if out.returncode != 0:
        raise RuntimeError(f"ws_clients failed:\n{out.stderr[-3000:]}")
    figures = json.loads(out.stdout)
    last = figures["last_ms"] or float("inf")
    holds = figures["received"] == SUBSCRIBERS and last < LIMIT_MS
    return Result(
        "fanout",
        "ms",
        last,
        None,
        f"all {SUBSCRIBERS} within {LIMIT_MS:.0f} ms",
        holds,
        f"received {figures['received']}/{SUBSCRIBERS} over 2 processes; median {figures['p50_ms']:.0f} ms; "
        f"the mutation itself {figures['mutation_ms']:.0f} ms; connecting took {figures['connect_s']:.1f} s",
    )
