"""The trigger wake-up's Redis cost on the request path (issue 17): one enqueue per run per window per process."""

from __future__ import annotations

import asyncio

from arq import create_pool
from arq.connections import RedisSettings
from redis.asyncio import Redis

from jobs.queue import SEND_TRIGGERS, JobQueue
from tests.conftest import _redis


async def _watches(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_watch", {}).get("calls", 0))


async def test_wake_ups_of_one_window_send_one_enqueue_to_redis(redis: Redis) -> None:
    arq = await create_pool(RedisSettings.from_dsn(_redis()))
    try:
        queue = JobQueue(arq)
        run_id = 987_654  # no such run: only the queue's jobs are looked at
        for _ in range(3):  # a window boundary crossed meanwhile: try again in the next one
            before = await _watches(redis)
            # Concurrent, as a server's calls are: the first's enqueue is still under way when the others come.
            first, *again = await asyncio.gather(*(queue.wake_triggers(run_id, 60.0, f"t{n}") for n in range(11)))
            watches = await _watches(redis) - before
            prefix = f"{SEND_TRIGGERS}:{run_id}:".encode()
            jobs = [j for j in await arq.zrange("arq:queue", 0, -1) if j.startswith(prefix)]
            if len(jobs) == 1:
                break
        assert first is not None and again == [None] * 10
        # arq's enqueue is one WATCH/MULTI: the ten later calls of the window sent nothing.
        assert watches == 1, watches
        await arq.delete("arq:queue", *[b"arq:job:" + j for j in jobs])
    finally:
        await arq.aclose()
