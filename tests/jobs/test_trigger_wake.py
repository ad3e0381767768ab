"""The trigger wake-up's Redis cost on the request path (issue 17): one enqueue per run per window per process."""

from __future__ import annotations

import asyncio

from arq import create_pool
from arq.connections import RedisSettings
from redis.asyncio import Redis

from jobs.queue import SEND_TRIGGERS, JobQueue
from tests.conftest import _redis


async def _commands(redis: Redis) -> int:
    """Commands Redis ran for clients (INFO itself included, once per call)."""
    stats = await redis.info("commandstats")
    return sum(int(figures.get("calls", 0)) for figures in stats.values())


async def test_wake_ups_of_one_window_send_one_enqueue_to_redis(redis: Redis) -> None:
    arq = await create_pool(RedisSettings.from_dsn(_redis()))
    try:
        queue = JobQueue(arq)
        run_id = 987_654  # no such run: only the queue's jobs are looked at
        for _ in range(3):  # a window boundary crossed meanwhile: try again in the next one
            before = await _commands(redis)
            # Concurrent, as a server's calls are: the first's enqueue is still under way when the others come.
            first, *again = await asyncio.gather(*(queue.wake_triggers(run_id, 60.0, f"t{n}") for n in range(11)))
            commands = await _commands(redis) - before
            prefix = f"{SEND_TRIGGERS}:{run_id}:".encode()
            jobs = [j for j in await arq.zrange("arq:queue", 0, -1) if j.startswith(prefix)]
            if len(jobs) == 1:
                break
        assert first is not None and again == [None] * 10
        # One enqueue: one EVAL running EXISTS, PSETEX and ZADD (arq's own was WATCH, EXISTS, MULTI, PSETEX, ZADD,
        # EXEC in three round trips); the first INFO is counted once. The ten later calls sent nothing.
        assert commands == 1 + 4, commands
        await arq.delete("arq:queue", *[b"arq:job:" + j for j in jobs])
    finally:
        await arq.aclose()


async def test_the_one_round_trip_enqueue_keeps_arq_s_rules(redis: Redis) -> None:
    """Same keys and values as arq's enqueue_job: arq reads the job back, a second job with the id is refused while
    the first is queued and while its result is kept, and a deferred job is scored at its time."""
    from datetime import UTC, datetime, timedelta

    from arq.constants import job_key_prefix, result_key_prefix
    from arq.jobs import JobStatus
    from arq.utils import to_unix_ms

    arq = await create_pool(RedisSettings.from_dsn(_redis()))
    job_id = f"{SEND_TRIGGERS}:424242:rules"
    try:
        queue = JobQueue(arq)
        due = datetime.now(UTC) + timedelta(minutes=5)
        job = await queue.enqueue(SEND_TRIGGERS, 424242, job_id=job_id, _defer_until=due)
        assert job is not None
        info = await job.info()
        assert info is not None and (info.function, info.args, info.kwargs) == (SEND_TRIGGERS, (424242,), {})
        assert await job.status() is JobStatus.deferred
        assert await arq.zscore(arq.default_queue_name, job_id) == to_unix_ms(due)
        ttl_ms = await arq.pttl(job_key_prefix + job_id)
        assert 5 * 60_000 < ttl_ms <= 5 * 60_000 + arq.expires_extra_ms, ttl_ms
        assert await queue.enqueue(SEND_TRIGGERS, 1, job_id=job_id) is None  # queued: refused
        await arq.delete(job_key_prefix + job_id)
        await arq.zrem(arq.default_queue_name, job_id)
        await arq.set(result_key_prefix + job_id, b"kept", px=60_000)
        assert await queue.enqueue(SEND_TRIGGERS, 1, job_id=job_id) is None  # its result kept: refused
        await arq.delete(result_key_prefix + job_id)
        assert await queue.enqueue(SEND_TRIGGERS, 1, job_id=job_id) is not None  # gone: a new job
    finally:
        await arq.delete(job_key_prefix + job_id, result_key_prefix + job_id)
        await arq.zrem(arq.default_queue_name, job_id)
        await arq.aclose()
