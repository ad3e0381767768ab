"""API triggers at a steady rate (issue 17): acceptance latency, and acceptance to the message at the sink.

A real `herald serve` and two `herald worker` processes on the bench database and a redis-server of its own; an
API_TRIGGERED TRANSACTIONAL email campaign to an aiosmtpd sink in this process that records when each message
arrives. The load is open-loop: call i starts at t0 + i / BENCH_TRIGGER_RATE (default 200/s) for
BENCH_TRIGGER_SECONDS (default 60), each with its own idempotency key and one recipient, whatever the answers'
latency (a closed loop would hide queueing). Targets (issue 17): acceptance p99 < 50 ms, acceptance-to-sink
p99 < 1 s. The figures are absolute on this machine: there is no reference engine to run beside it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import Result, dsn_for

RATE = float(os.environ.get("BENCH_TRIGGER_RATE", "200"))
SECONDS = float(os.environ.get("BENCH_TRIGGER_SECONDS", "60"))
ACCEPT_P99_MS = 50.0
SINK_P99_MS = 1000.0


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98] if len(values) > 1 else values[0]


async def _run(database: str) -> Result:
    # The crash suite's harness (worker processes, own redis-server, sink), imported only when this runs.
    from tests.crash.actions import address
    from tests.crash.harness import Herald, RedisServer, SlowSink
    from tests.crash.test_trigger_crash import start_serve, stop_serve
    from tests.jobs.smtp_sink import smtp_sink
    from tests.serving import free_port

    @dataclass
    class TimedSink(SlowSink):
        arrived: dict[str, float] = field(default_factory=dict)  # recipient -> monotonic time of its DATA

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            answer = await super().handle_DATA(server, session, envelope)
            now = time.monotonic()
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt, now)
            return answer

    calls = int(RATE * SECONDS)
    directory = Path(tempfile.mkdtemp(prefix="herald-bench-trigger-"))
    redis = RedisServer(directory)
    redis.start()
    herald = Herald(dsn_for(database), redis, directory, lease=5.0)
    await herald.connect()
    handler = TimedSink(delay=0.0)
    accepted_at: dict[str, float] = {}
    latencies: list[float] = []
    failures = 0
    serve = None
    workers = []
    try:
        async with smtp_sink(handler) as sink:
            seeded = await herald.action("seed_api", {"profiles": calls, "sink_port": sink.port})
            port = free_port()
            serve = start_serve(herald, port, directory / "serve.log")
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as probe:
                for _ in range(300):
                    try:
                        if (await probe.get("/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.2)
            workers = [herald.worker(), herald.worker()]
            headers = {"Authorization": f"Bearer {seeded['key']}"}
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30, limits=limits) as http:

                async def one(index: int, at: float) -> None:
                    nonlocal failures
                    await asyncio.sleep(max(0.0, at - time.monotonic()))
                    body = {"context": {"order": f"o{index}"}, "recipients": [{"identity": {
                        "namespace": "Email", "value": address(index)}}]}  # fmt: skip
                    started = time.monotonic()
                    try:
                        reply = await http.post(
                            f"/campaigns/{seeded['campaign']}/triggers",
                            json=body,
                            headers={"Idempotency-Key": f"bench-{index}"},
                        )
                    except httpx.TransportError:
                        failures += 1
                        return
                    done = time.monotonic()
                    if reply.status_code not in (200, 201):
                        failures += 1
                        return
                    latencies.append(done - started)
                    accepted_at[address(index)] = done

                t0 = time.monotonic() + 0.5
                await asyncio.gather(*(one(i, t0 + i / RATE) for i in range(calls)))
                offered_for = time.monotonic() - t0
            for _ in range(600):  # up to 120 s for the last messages to reach the sink
                if len(handler.arrived) >= len(accepted_at):
                    break
                await asyncio.sleep(0.2)
    finally:
        if serve is not None:
            stop_serve(serve)
        for worker in workers:
            worker.stop()
        await herald.close()
        redis.stop()
    to_sink = [handler.arrived[r] - at for r, at in accepted_at.items() if r in handler.arrived]
    missing = len(accepted_at) - len(to_sink)
    accept_p99 = p99(latencies) * 1000 if latencies else float("inf")
    sink_p99 = p99(to_sink) * 1000 if to_sink else float("inf")
    holds = accept_p99 < ACCEPT_P99_MS and sink_p99 < SINK_P99_MS and not failures and not missing
    return Result(
        name="trigger",
        unit="ms p99",
        measured=accept_p99,
        reference=None,
        target=f"accept p99 < {ACCEPT_P99_MS:.0f} ms, to sink < {SINK_P99_MS:.0f} ms",
        holds=holds,
        detail=(
            f"{len(latencies)} of {calls} triggers accepted at {RATE:.0f}/s offered over {offered_for:.1f} s; "
            f"acceptance p50 {statistics.median(latencies) * 1000:.1f} ms p99 {accept_p99:.1f} ms; "
            f"acceptance to sink p50 {statistics.median(to_sink) * 1000 if to_sink else 0:.0f} ms "
            f"p99 {sink_p99:.0f} ms; {failures} failed calls, {missing} accepted but not at the sink after 120 s"
        ),
    )


def run(database: str, seeded: dict[str, object]) -> Result:
    return asyncio.run(_run(database))
