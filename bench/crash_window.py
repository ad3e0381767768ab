"""A worker SIGKILLed mid-run, Herald's default settings (issue 22: at most 20 same-Message-ID resends per kill;
another worker resumes within 10 s).

An email run of BENCH_CRASH_PROFILES (default 4500) profiles to an aiosmtpd sink in this process taking
BENCH_SINK_DELAY_MS (default 20) per message, sent by two `herald worker` processes (the run split into send
parts as by default). When a third of the messages are in, one of them is killed with SIGKILL. Figures:
- resends: Message-IDs the sink received more than once;
- stall: the longest gap between two messages at the sink after the kill (the run going on without it);
- takeover: from the kill until the first resent message arrives, i.e. until another worker sends the rows the
  killed one held (their lease expired, `RUN_LEASE_SECONDS`, then the dispatcher's or the other sender's pass);
- the run ends SUCCEEDED with each profile's row final (the crash suite's checks, tests/crash/harness.py);
- resent: what the run itself counted (`CampaignRun.resent`, an upper bound), printed beside the sink's figure.
The worker harness is the crash suite's, with the settings it changes for speed put back to their defaults.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Result, dsn_for

PROFILES = int(os.environ.get("BENCH_CRASH_PROFILES", "4500"))
SINK_DELAY = float(os.environ.get("BENCH_SINK_DELAY_MS", "20")) / 1000
MAX_RESENDS = 20
MAX_STALL_SECONDS = 10.0


async def _run(database: str) -> Result:
    from api.settings import Settings
    from tests.crash.harness import Herald, RedisServer, SlowSink, contactable
    from tests.e2e.polling import wait_until
    from tests.jobs.smtp_sink import smtp_sink

    class TimedSink(SlowSink):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.times: list[float] = []

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            answer = await super().handle_DATA(server, session, envelope)
            self.times.append(time.monotonic())
            return answer

    defaults = Settings.model_fields
    lease = float(defaults["run_lease_seconds"].default)
    directory = Path(tempfile.mkdtemp(prefix="herald-bench-crash-"))
    redis = RedisServer(directory)
    redis.start()
    herald = Herald(dsn_for(database), redis, directory, lease=lease)
    await herald.connect()
    default_env = {
        "SEND_RETRY_BASE_SECONDS": str(defaults["send_retry_base_seconds"].default),
        "WORKER_POLL_DELAY_SECONDS": str(defaults["worker_poll_delay_seconds"].default),
    }
    try:
        async with smtp_sink(TimedSink(delay=SINK_DELAY)) as sink:
            handler: TimedSink = sink.handler  # type: ignore[assignment]
            seeded = await herald.action("seed", {"profiles": PROFILES, "sink_port": sink.port, "enqueue": False})
            victim = herald.worker(**default_env)
            herald.worker(**default_env)
            await herald.enqueue(seeded["run_id"])
            await wait_until(lambda: len(handler.pairs) >= PROFILES // 3, timeout=300, interval=0.01)
            victim.kill9()
            killed_at, at_kill = time.monotonic(), len(handler.pairs)
            result = await herald.check(
                seeded["run_id"], handler, contactable=contactable(PROFILES), crashes=1, in_flight=PROFILES
            )
            seen: set[str] = set()
            first_resend = None
            for (message_id, _), received_at in zip(handler.pairs, handler.times, strict=True):
                if message_id in seen and first_resend is None:
                    first_resend = received_at - killed_at
                seen.add(message_id)
            after = [killed_at, *(t for t in handler.times if t >= killed_at)]
            stall = max((b - a for a, b in itertools.pairwise(after)), default=0.0)
    finally:
        await herald.close()
        redis.stop()
    resends, counted = result["duplicated"], int(result["run"]["resent"])
    # Resumed: the run went on (stall) and the killed worker's rows were taken over (first resend), within 10 s.
    taken_over = first_resend is None or first_resend <= MAX_STALL_SECONDS
    # The run's count is an upper bound of the sink's (messages marked as handed over may not have reached it).
    holds = resends <= MAX_RESENDS and stall <= MAX_STALL_SECONDS and taken_over and counted >= resends
    takeover = f"{first_resend:.1f} s" if first_resend is not None else "no resend"
    return Result(
        name="crash_window",
        unit="resends",
        measured=float(resends),
        reference=None,
        target=f"<= {MAX_RESENDS} resends, resumed <= {MAX_STALL_SECONDS:.0f} s",
        holds=holds,
        detail=(
            f"{PROFILES} emails, two workers, one SIGKILLed at {at_kill} sent: {resends} same-Message-ID "
            f"resends (run.resent {counted}), longest gap at the sink after the kill {stall:.2f} s, first resend "
            f"{takeover} after the kill (RUN_LEASE_SECONDS {lease:g}); run {result['run']['status']}, "
            f"{result['by_status']}"
        ),
    )


def run(database: str, seeded: dict[str, object]) -> Result:
    return asyncio.run(_run(database))
